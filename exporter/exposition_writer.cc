#include "exposition_writer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace pidfd_exporter {
namespace {

// HELP text escapes backslash and newline only (the format's rule; quotes stay as they are).
void AppendEscapedHelp(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

const char* TypeName(ExpositionWriter::Type type) {
  switch (type) {
    case ExpositionWriter::Type::kCounter:
      return "counter";
    case ExpositionWriter::Type::kGauge:
      return "gauge";
    case ExpositionWriter::Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// A sample's value as text, in a buffer of its own: the shortest form that reads back as the
// same double, or the format's spelling of infinities and NaN.
struct ValueText {
  char text[32];  // the shortest round-trip form of a double needs at most 24
  size_t size = 0;
  std::string_view view() const { return {text, size}; }
};

ValueText FormatDouble(double value) {
  ValueText out;
  std::string_view special;
  if (std::isnan(value)) {
    special = "NaN";
  } else if (std::isinf(value)) {
    special = value < 0 ? "-Inf" : "+Inf";
  } else {
    out.size = static_cast<size_t>(std::to_chars(out.text, out.text + sizeof out.text, value).ptr - out.text);
    return out;
  }
  std::memcpy(out.text, special.data(), special.size());
  out.size = special.size();
  return out;
}

ValueText FormatUnsigned(uint64_t value) {
  ValueText out;
  out.size = static_cast<size_t>(std::to_chars(out.text, out.text + sizeof out.text, value).ptr - out.text);
  return out;
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '"') {
      escaped += "\\\"";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

void AppendSampleValue(std::string& out, double value) {
  out += FormatDouble(value).view();
}

void ExpositionWriter::Family(std::string_view name, std::string_view help, Type type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  AppendEscapedHelp(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += TypeName(type);
  out_ += '\n';
}

void ExpositionWriter::Line(std::string_view name, std::string_view suffix, std::string_view first,
                            std::string_view labels, std::string_view value) {
  // Composed on the stack and appended once: the pieces are short, and appending each on its
  // own (a capacity check and a copy per piece, a call per brace) cost more than writing them.
  const std::string_view pieces[] = {name, suffix, first, labels, value};
  size_t length = 4;  // braces, comma or space, newline
  for (std::string_view piece : pieces) length += piece.size();
  char stack[512];
  std::string heap;
  char* line = stack;
  if (length > sizeof stack) {
    heap.resize(length);  // a set name of 128 bytes escaped, and more labels: rare
    line = heap.data();
  }
  char* at = line;
  auto put = [&at](std::string_view piece) {
    if (piece.empty()) return;  // an empty view may hold a null pointer, which memcpy must not get
    std::memcpy(at, piece.data(), piece.size());
    at += piece.size();
  };
  put(name);
  put(suffix);
  if (!first.empty() || !labels.empty()) {
    *at++ = '{';
    put(first);
    if (!first.empty() && !labels.empty()) *at++ = ',';
    put(labels);
    *at++ = '}';
  }
  *at++ = ' ';
  put(value);
  *at++ = '\n';
  out_.append(line, static_cast<size_t>(at - line));
}

void ExpositionWriter::Sample(std::string_view name, std::string_view first, std::string_view labels,
                              double value) {
  Line(name, {}, first, labels, FormatDouble(value).view());
}

void ExpositionWriter::Histogram(std::string_view name, std::string_view labels,
                                 const std::vector<std::string>& bound_labels,
                                 const std::vector<uint64_t>& cumulative_counts, double sum) {
  const size_t buckets = std::min(bound_labels.size(), cumulative_counts.size());
  for (size_t i = 0; i < buckets; ++i)
    Line(name, "_bucket", labels, bound_labels[i], FormatUnsigned(cumulative_counts[i]).view());
  Line(name, "_sum", {}, labels, FormatDouble(sum).view());
  Line(name, "_count", {}, labels, FormatUnsigned(buckets > 0 ? cumulative_counts[buckets - 1] : 0).view());
}

std::vector<std::string> ExpositionWriter::BoundLabels(const std::vector<double>& bounds) {
  std::vector<std::string> labels;
  labels.reserve(bounds.size() + 1);
  for (double bound : bounds) {
    // The text prometheus-cpp wrote before this writer (and Go's clients write for such bounds):
    // "0.0001", not to_chars's shorter "1e-04". The le value is part of the series' identity.
    char text[40];
    std::snprintf(text, sizeof text, "le=\"%.16g\"", bound);
    labels.emplace_back(text);
  }
  labels.emplace_back("le=\"+Inf\"");
  return labels;
}

}  // namespace pidfd_exporter
