#include "prometheus_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

namespace integration {
namespace {

bool IsMetricNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsMetricNameChar(char c) {
  return IsMetricNameStart(c) || (c >= '0' && c <= '9');
}
bool IsLabelNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsLabelNameChar(char c) {
  return IsLabelNameStart(c) || (c >= '0' && c <= '9');
}
bool IsBlank(char c) {
  return c == ' ' || c == '\t';
}

// A cursor over one line; every Parse* returns false with `error` set on malformed input.
class LineParser {
 public:
  explicit LineParser(std::string_view line) : line_(line) {}

  void SkipBlanks() {
    while (position_ < line_.size() && IsBlank(line_[position_])) ++position_;
  }
  bool AtEnd() const { return position_ >= line_.size(); }
  char Peek() const { return AtEnd() ? '\0' : line_[position_]; }
  void Advance() { ++position_; }
  std::string_view Rest() const { return line_.substr(std::min(position_, line_.size())); }

  bool ParseMetricName(std::string* name) {
    size_t start = position_;
    if (AtEnd() || !IsMetricNameStart(Peek())) return Fail("expected a metric name");
    while (!AtEnd() && IsMetricNameChar(Peek())) Advance();
    *name = std::string(line_.substr(start, position_ - start));
    return true;
  }

  bool ParseLabelName(std::string* name) {
    size_t start = position_;
    if (AtEnd() || !IsLabelNameStart(Peek())) return Fail("expected a label name");
    while (!AtEnd() && IsLabelNameChar(Peek())) Advance();
    *name = std::string(line_.substr(start, position_ - start));
    return true;
  }

  // A double-quoted label value with the three escapes of the format: \\ \" \n.
  bool ParseLabelValue(std::string* value) {
    if (Peek() != '"') return Fail("expected '\"' to open a label value");
    Advance();
    value->clear();
    while (!AtEnd()) {
      char c = Peek();
      Advance();
      if (c == '"') return true;
      if (c != '\\') {
        value->push_back(c);
        continue;
      }
      if (AtEnd()) break;
      char escaped = Peek();
      Advance();
      switch (escaped) {
        case '\\':
          value->push_back('\\');
          break;
        case '"':
          value->push_back('"');
          break;
        case 'n':
          value->push_back('\n');
          break;
        default:
          return Fail(std::string("invalid escape \\") + escaped + " in a label value");
      }
    }
    return Fail("unterminated label value");
  }

  bool ParseLabels(Labels* labels) {
    labels->clear();
    if (Peek() != '{') return true;
    Advance();
    std::set<std::string> seen;
    SkipBlanks();
    while (Peek() != '}') {
      std::string name, value;
      if (!ParseLabelName(&name)) return false;
      SkipBlanks();
      if (Peek() != '=') return Fail("expected '=' after label name " + name);
      Advance();
      SkipBlanks();
      if (!ParseLabelValue(&value)) return false;
      if (!seen.insert(name).second) return Fail("duplicate label " + name);
      labels->emplace_back(std::move(name), std::move(value));
      SkipBlanks();
      if (Peek() == ',') {
        Advance();
        SkipBlanks();
        continue;
      }
      if (Peek() != '}') return Fail("expected ',' or '}' in the label set");
    }
    Advance();
    return true;
  }

  // The next blank-separated token.
  std::string_view Token() {
    size_t start = position_;
    while (!AtEnd() && !IsBlank(Peek())) Advance();
    return line_.substr(start, position_ - start);
  }

  bool Fail(std::string message) {
    error = std::move(message);
    return false;
  }

  std::string error;

 private:
  std::string_view line_;
  size_t position_ = 0;
};

// Go's strconv.ParseFloat as Prometheus uses it: decimal/exponent forms, NaN, ±Inf.
bool ParseValue(std::string_view token, double* value) {
  if (token == "NaN") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (token == "+Inf" || token == "Inf") {
    *value = std::numeric_limits<double>::infinity();
    return true;
  }
  if (token == "-Inf") {
    *value = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (token.empty()) return false;
  std::string_view digits = token;
  if (digits.front() == '+') digits.remove_prefix(1);
  if (digits.empty() ||
      !((digits.front() >= '0' && digits.front() <= '9') || digits.front() == '-' || digits.front() == '.')) {
    return false;
  }
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), *value);
  return error == std::errc() && end == digits.data() + digits.size();
}

bool ParseTimestamp(std::string_view token) {
  if (!token.empty() && token.front() == '-') token.remove_prefix(1);
  if (token.empty()) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool LabelsContain(const Labels& labels, const Labels& subset) {
  for (const auto& wanted : subset) {
    if (std::find(labels.begin(), labels.end(), wanted) == labels.end()) return false;
  }
  return true;
}

// The family a sample belongs to given the TYPE lines seen so far: a histogram's
// name_bucket/_sum/_count samples belong to `name`.
std::string FamilyOf(const std::string& sample_name,
                     const std::map<std::string, std::string, std::less<>>& types) {
  if (types.count(sample_name)) return sample_name;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (sample_name.size() > suffix.size() && sample_name.ends_with(suffix)) {
      std::string base = sample_name.substr(0, sample_name.size() - suffix.size());
      auto type = types.find(base);
      if (type == types.end()) continue;
      if (type->second == "histogram" || (type->second == "summary" && suffix != "_bucket")) return base;
    }
  }
  return sample_name;
}

}  // namespace

Labels Sorted(Labels labels) {
  std::sort(labels.begin(), labels.end());
  return labels;
}

std::string FormatSeries(std::string_view name, const Labels& labels) {
  std::string out(name);
  if (labels.empty()) return out;
  out += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += labels[i].first + "=\"";
    for (char c : labels[i].second) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::optional<double> Metrics::Value(std::string_view name, Labels labels) const {
  auto found = series_.find(SeriesKey{std::string(name), Sorted(std::move(labels))});
  if (found == series_.end()) return std::nullopt;
  return found->second;
}

double Metrics::ValueOrZero(std::string_view name, Labels labels) const {
  return Value(name, std::move(labels)).value_or(0);
}

std::vector<Sample> Metrics::Find(std::string_view name, const Labels& subset) const {
  std::vector<Sample> found;
  for (auto it = series_.lower_bound(SeriesKey{std::string(name), {}});
       it != series_.end() && it->first.name == name; ++it) {
    if (LabelsContain(it->first.labels, subset))
      found.push_back({it->first.name, it->first.labels, it->second});
  }
  return found;
}

double Metrics::Sum(std::string_view name, const Labels& subset) const {
  double sum = 0;
  for (const Sample& sample : Find(name, subset)) sum += sample.value;
  return sum;
}

std::string Metrics::Type(std::string_view family) const {
  auto found = types_.find(family);
  return found == types_.end() ? "" : found->second;
}

ParseResult ParsePrometheusText(std::string_view text) {
  ParseResult result;
  Metrics& metrics = result.metrics;
  if (!IsValidUtf8(text)) {
    result.error = "line 0: the exposition is not valid UTF-8";
    return result;
  }
  if (!text.empty() && text.back() != '\n') {
    result.error = "line 0: the exposition does not end with a newline";
    return result;
  }
  std::set<std::string> families_with_samples;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 1);
    ++line_number;
    auto fail = [&](const std::string& message) {
      result.error = "line " + std::to_string(line_number) + ": " + message + " in: " + std::string(line);
      return result;
    };
    LineParser parser(line);
    parser.SkipBlanks();
    if (parser.AtEnd()) continue;
    if (parser.Peek() == '#') {
      parser.Advance();
      parser.SkipBlanks();
      std::string_view keyword = parser.Token();
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a plain comment
      parser.SkipBlanks();
      std::string family;
      if (!parser.ParseMetricName(&family)) return fail(parser.error);
      if (families_with_samples.count(family))
        return fail(std::string(keyword) + " after the family's samples");
      if (keyword == "TYPE") {
        parser.SkipBlanks();
        std::string type(parser.Token());
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.count(type)) return fail("unknown metric type '" + type + "'");
        if (!metrics.types_.emplace(family, type).second) return fail("second TYPE line for " + family);
      } else {
        if (!parser.AtEnd() && !IsBlank(parser.Peek())) return fail("malformed HELP line");
        parser.SkipBlanks();
        if (!metrics.help_.emplace(family, std::string(parser.Rest())).second) {
          return fail("second HELP line for " + family);
        }
      }
      continue;
    }
    std::string name;
    Labels labels;
    if (!parser.ParseMetricName(&name)) return fail(parser.error);
    if (!parser.ParseLabels(&labels)) return fail(parser.error);
    parser.SkipBlanks();
    double value = 0;
    if (!ParseValue(parser.Token(), &value)) return fail("malformed sample value");
    parser.SkipBlanks();
    if (!parser.AtEnd() && !ParseTimestamp(parser.Token())) return fail("malformed timestamp");
    parser.SkipBlanks();
    if (!parser.AtEnd()) return fail("trailing characters");
    families_with_samples.insert(FamilyOf(name, metrics.types_));
    if (!metrics.series_.emplace(SeriesKey{name, Sorted(labels)}, value).second) {
      return fail("duplicate series " + FormatSeries(name, Sorted(labels)));
    }
  }
  return result;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    uint32_t code_point = 0;
    if ((byte & 0xE0) == 0xC0) {
      length = 2;
      code_point = byte & 0x1F;
    } else if ((byte & 0xF0) == 0xE0) {
      length = 3;
      code_point = byte & 0x0F;
    } else if ((byte & 0xF8) == 0xF0) {
      length = 4;
      code_point = byte & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    static constexpr uint32_t kSmallestForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kSmallestForLength[length] || code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    i += length;
  }
  return true;
}

}  // namespace integration
