// ExpositionWriter: the text format's lines, escapes and numbers, byte for byte.
#include "exposition_writer.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <random>
#include <string>

namespace pidfd_exporter {
namespace {

std::string Value(double value) {
  std::string out;
  AppendSampleValue(out, value);
  return out;
}

TEST(ExpositionWriterTest, LabelValuesEscapeBackslashQuoteAndNewlineOnly) {
  EXPECT_EQ(EscapeLabelValue(R"(a\b"c)"
                             "\n"
                             "d"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(EscapeLabelValue("t\xC3\xA9st\tx"), "t\xC3\xA9st\tx");  // UTF-8 and tabs pass as they are
  EXPECT_EQ(EscapeLabelValue(""), "");
}

TEST(ExpositionWriterTest, NumbersAreShortestRoundTripAndSpecialValuesSpelledOut) {
  EXPECT_EQ(Value(0), "0");
  EXPECT_EQ(Value(3), "3");
  EXPECT_EQ(Value(-2), "-2");
  EXPECT_EQ(Value(0.1), "0.1");
  EXPECT_EQ(Value(4640768000.0), "4640768000");
  EXPECT_EQ(Value(1.79662e9), "1796620000");
  EXPECT_EQ(Value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(Value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(Value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> magnitude(-300, 300);
  for (int i = 0; i < 10000; ++i) {
    const double value = std::pow(10.0, magnitude(random)) * (i % 2 ? 1 : -1);
    const std::string text = Value(value);
    double read = 0;
    ASSERT_EQ(std::from_chars(text.data(), text.data() + text.size(), read).ec, std::errc()) << text;
    EXPECT_EQ(read, value) << text;
  }
}

TEST(ExpositionWriterTest, FamilyHeaderEscapesHelpBackslashAndNewline) {
  std::string out;
  ExpositionWriter writer(out);
  writer.Family("a_total", "Counts \"x\" \\ y\nz.", ExpositionWriter::Type::kCounter);
  writer.Family("b", "B.", ExpositionWriter::Type::kGauge);
  writer.Family("c", "C.", ExpositionWriter::Type::kHistogram);
  EXPECT_EQ(out,
            "# HELP a_total Counts \"x\" \\\\ y\\nz.\n# TYPE a_total counter\n"
            "# HELP b B.\n# TYPE b gauge\n"
            "# HELP c C.\n# TYPE c histogram\n");
}

TEST(ExpositionWriterTest, SamplesJoinLabelBlocks) {
  std::string out;
  ExpositionWriter writer(out);
  writer.Sample("up", "", "", 1);
  writer.Sample("x_total", "", R"(set="a")", 2.5);
  writer.Sample("x_total", R"(mode="user")", R"(set="a")", 7);
  writer.Sample("y", R"(op="z")", "", 0);
  EXPECT_EQ(out, "up 1\nx_total{set=\"a\"} 2.5\nx_total{mode=\"user\",set=\"a\"} 7\ny{op=\"z\"} 0\n");
}

TEST(ExpositionWriterTest, HistogramWritesCumulativeBucketsThenSumAndCount) {
  const std::vector<std::string> bounds = ExpositionWriter::BoundLabels({0.0001, 1e-05, 2.5, 100});
  ASSERT_EQ(bounds.size(), 5u);
  EXPECT_EQ(bounds[0], R"(le="0.0001")");
  EXPECT_EQ(bounds[1], R"(le="1e-05")");
  EXPECT_EQ(bounds[2], R"(le="2.5")");
  EXPECT_EQ(bounds[3], R"(le="100")");
  EXPECT_EQ(bounds[4], R"(le="+Inf")");
  std::string out;
  ExpositionWriter writer(out);
  writer.Histogram("h_seconds", R"(set="s")", ExpositionWriter::BoundLabels({0.5, 1}), {1, 3, 4}, 2.25);
  EXPECT_EQ(out,
            "h_seconds_bucket{set=\"s\",le=\"0.5\"} 1\n"
            "h_seconds_bucket{set=\"s\",le=\"1\"} 3\n"
            "h_seconds_bucket{set=\"s\",le=\"+Inf\"} 4\n"
            "h_seconds_sum{set=\"s\"} 2.25\n"
            "h_seconds_count{set=\"s\"} 4\n");
}

}  // namespace
}  // namespace pidfd_exporter
