// The harness's Prometheus text parser, on canned text: the integration tests trust it to read
// the exporter's /metrics, so it must read exactly what the format allows and refuse the rest.
#include "prometheus_text.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <string>

namespace integration {
namespace {

TEST(PrometheusTextTest, ReadsSeriesByNameAndLabelsInAnyOrder) {
  ParseResult parsed = ParsePrometheusText(
      "# HELP pidfd_process_exits_total Exits.\n"
      "# TYPE pidfd_process_exits_total counter\n"
      "pidfd_process_exits_total{set=\"a\",reason=\"exited\",code=\"3\"} 5\n"
      "pidfd_process_exits_total{set=\"a\",reason=\"killed\",code=\"SIGKILL\"} 1\n"
      "pidfd_exporter_watched_pidfds 2\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  const Metrics& metrics = parsed.metrics;
  EXPECT_EQ(metrics.Value("pidfd_process_exits_total", {{"code", "3"}, {"set", "a"}, {"reason", "exited"}}),
            5);
  EXPECT_EQ(metrics.Value("pidfd_exporter_watched_pidfds"), 2);
  EXPECT_FALSE(metrics.Value("pidfd_process_exits_total", {{"set", "a"}}).has_value());
  EXPECT_EQ(metrics.Sum("pidfd_process_exits_total", {{"set", "a"}}), 6);
  EXPECT_EQ(metrics.Find("pidfd_process_exits_total", {{"reason", "killed"}}).size(), 1u);
  EXPECT_EQ(metrics.ValueOrZero("pidfd_process_exits_total", {{"set", "b"}}), 0);
  EXPECT_EQ(metrics.Type("pidfd_process_exits_total"), "counter");
}

TEST(PrometheusTextTest, UnescapesLabelValues) {
  ParseResult parsed = ParsePrometheusText("m{set=\"a\\\\b\\\"c\\nd\"} 1\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  EXPECT_EQ(parsed.metrics.Value("m", {{"set", "a\\b\"c\nd"}}), 1);
}

TEST(PrometheusTextTest, ReadsSpecialValuesAndTimestamps) {
  ParseResult parsed = ParsePrometheusText(
      "# TYPE h histogram\n"
      "h_bucket{le=\"0.1\"} 1\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "h_sum 1.5e-3\n"
      "h_count 2\n"
      "a NaN\n"
      "b +Inf\n"
      "c -Inf 1700000000000\n"
      "d -0.25\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  const Metrics& metrics = parsed.metrics;
  EXPECT_EQ(metrics.Value("h_bucket", {{"le", "+Inf"}}), 2);
  EXPECT_DOUBLE_EQ(*metrics.Value("h_sum"), 0.0015);
  EXPECT_TRUE(std::isnan(*metrics.Value("a")));
  EXPECT_EQ(metrics.Value("b"), INFINITY);
  EXPECT_EQ(metrics.Value("c"), -INFINITY);
  EXPECT_EQ(metrics.Value("d"), -0.25);
}

TEST(PrometheusTextTest, AcceptsTrailingCommaAndBlankLinesAndComments) {
  ParseResult parsed = ParsePrometheusText("# just a comment\n\nm{a=\"1\",} 3\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error;
  EXPECT_EQ(parsed.metrics.Value("m", {{"a", "1"}}), 3);
}

TEST(PrometheusTextTest, EmptyExpositionIsValid) {
  EXPECT_TRUE(ParsePrometheusText("").ok());
}

struct Malformed {
  const char* why;
  const char* text;
};

class PrometheusTextRejects : public testing::TestWithParam<Malformed> {};

TEST_P(PrometheusTextRejects, MalformedExposition) {
  ParseResult parsed = ParsePrometheusText(GetParam().text);
  EXPECT_FALSE(parsed.ok()) << GetParam().why;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PrometheusTextRejects,
    testing::Values(Malformed{"unknown escape", "m{a=\"\\x\"} 1\n"},
                    Malformed{"raw quote", "m{a=\"x\"y\"} 1\n"},
                    Malformed{"unterminated value", "m{a=\"x} 1\n"},
                    Malformed{"missing value", "m{a=\"x\"}\n"}, Malformed{"bad value", "m 1.2.3\n"},
                    Malformed{"bad metric name", "1m 1\n"}, Malformed{"bad label name", "m{1a=\"x\"} 1\n"},
                    Malformed{"duplicate label", "m{a=\"x\",a=\"y\"} 1\n"},
                    Malformed{"duplicate series", "m{a=\"x\"} 1\nm{a=\"x\"} 2\n"},
                    Malformed{"invalid UTF-8", "m{a=\"\xff\xfe\"} 1\n"}, Malformed{"no final newline", "m 1"},
                    Malformed{"unknown type", "# TYPE m countr\nm 1\n"},
                    Malformed{"TYPE after samples", "m 1\n# TYPE m gauge\n"},
                    Malformed{"second TYPE", "# TYPE m gauge\n# TYPE m gauge\nm 1\n"},
                    Malformed{"trailing garbage", "m 1 2 3\n"},
                    Malformed{"raw newline in value", "m{a=\"x\n\"} 1\n"}),
    [](const testing::TestParamInfo<Malformed>& param_info) {
      std::string name = param_info.param.why;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(Utf8Test, AcceptsWellFormedAndRejectsInvalidSequences) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xbf\xef\xbf\xbd\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
}

}  // namespace
}  // namespace integration
