#include "exposition_writer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

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

void AppendUnsigned(std::string& out, uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
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
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
  } else {
    char buffer[32];  // the shortest round-trip form of a double needs at most 24
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    out.append(buffer, result.ptr);
  }
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

void ExpositionWriter::OpenSample(std::string_view name, std::string_view suffix, std::string_view first,
                                  std::string_view labels) {
  out_ += name;
  out_ += suffix;
  if (!first.empty() || !labels.empty()) {
    out_ += '{';
    out_ += first;
    if (!first.empty() && !labels.empty()) out_ += ',';
    out_ += labels;
    out_ += '}';
  }
  out_ += ' ';
}

void ExpositionWriter::Sample(std::string_view name, std::string_view first, std::string_view labels,
                              double value) {
  OpenSample(name, {}, first, labels);
  AppendSampleValue(out_, value);
  out_ += '\n';
}

void ExpositionWriter::Histogram(std::string_view name, std::string_view labels,
                                 const std::vector<std::string>& bound_labels,
                                 const std::vector<uint64_t>& cumulative_counts, double sum) {
  const size_t buckets = std::min(bound_labels.size(), cumulative_counts.size());
  for (size_t i = 0; i < buckets; ++i) {
    OpenSample(name, "_bucket", labels, bound_labels[i]);
    AppendUnsigned(out_, cumulative_counts[i]);
    out_ += '\n';
  }
  OpenSample(name, "_sum", labels, {});
  AppendSampleValue(out_, sum);
  out_ += '\n';
  OpenSample(name, "_count", labels, {});
  AppendUnsigned(out_, buckets > 0 ? cumulative_counts[buckets - 1] : 0);
  out_ += '\n';
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
