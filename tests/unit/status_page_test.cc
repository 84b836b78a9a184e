// Tests of the status page: escaping of hostile /proc strings, the quantile function, and
// the tables' content.
#include "status_page.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace pidfd_exporter {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(HtmlEscapeTest, EscapesMarkupCharacters) {
  EXPECT_EQ(HtmlEscape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&#39;f");
}

TEST(HtmlEscapeTest, KeepsValidUtf8) {
  EXPECT_EQ(HtmlEscape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
}

TEST(HtmlEscapeTest, ReplacesInvalidUtf8AndControlBytes) {
  EXPECT_EQ(HtmlEscape("\xff\xfe"), std::string(kReplacement) + kReplacement);
  EXPECT_EQ(HtmlEscape("a\nb\tc\x7f"),
            std::string("a") + kReplacement + "b" + kReplacement + "c" + kReplacement);
  EXPECT_EQ(HtmlEscape(std::string("x\0y", 3)), std::string("x") + kReplacement + "y");
  EXPECT_EQ(HtmlEscape("\xC0\xAF"), std::string(kReplacement) + kReplacement);  // overlong "/"
  EXPECT_EQ(HtmlEscape("\xED\xA0\x80"),
            std::string(kReplacement) + kReplacement + kReplacement);                    // surrogate
  EXPECT_EQ(HtmlEscape("\xF4\x90\x80\x80").find('\xF4'), std::string::npos);             // > U+10FFFF
  EXPECT_EQ(HtmlEscape("ab\xE2\x82"), std::string("ab") + kReplacement + kReplacement);  // truncated
}

TEST(HistogramQuantileTest, InterpolatesLinearlyInsideTheBucket) {
  const std::vector<double> bounds = {0.1, 1, 10};
  const std::vector<uint64_t> counts = {10, 20, 30, 40};  // cumulative, +Inf last
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.25, bounds, counts), 0.1);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.125, bounds, counts), 0.05);  // first bucket starts at 0
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.3, bounds, counts), 0.1 + 0.9 * 0.2);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, counts), 1.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.625, bounds, counts), 5.5);
}

TEST(HistogramQuantileTest, QuantileInInfBucketIsTheHighestFiniteBound) {
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, {0.1, 1, 10}, {10, 20, 30, 40}), 10.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, {0.1, 1}, {0, 0, 5}), 1.0);
}

TEST(HistogramQuantileTest, EmptyOrMalformedHistogramIsNaN) {
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {0.1, 1}, {0, 0, 0})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {}, {})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {0.1, 1}, {1, 2})));  // +Inf count missing
}

TEST(HistogramQuantileTest, OutOfRangeQuantilesFollowPromQL) {
  EXPECT_EQ(HistogramQuantile(-0.1, {1}, {1, 1}), -INFINITY);
  EXPECT_EQ(HistogramQuantile(1.1, {1}, {1, 1}), INFINITY);
}

TEST(HistogramQuantileTest, NonMonotonicCountsAreForcedMonotonic) {
  // Buckets read while observations arrived: {5, 4, 10} behaves like {5, 5, 10}.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, {1, 2}, {5, 4, 10}), 1.0);
}

StatusSnapshot HostileSnapshot() {
  StatusSnapshot snapshot;
  snapshot.version = "1.2.3";
  snapshot.revision = "abc123";
  snapshot.config_source = "/etc/pidfd_exporter/config.yml";
  snapshot.now_unix_seconds = 1000;
  snapshot.kernel_features = {{"reap_events", true}, {"exit_status", false}};
  StatusSet set;
  set.name = "<script>alert(1)</script>";
  set.watched = 4;
  set.zombies = 2;
  set.oldest_zombie_exit_unix_seconds = 1000 - 192;
  set.exits_total = 17;
  set.exits_recent = 3;
  set.reap_latency_bounds = {0.001, 0.01, 0.1};
  set.reap_latency_cumulative_counts = {5, 10, 10, 10};
  snapshot.sets.push_back(set);
  StatusZombie known;
  known.set = set.name;
  known.pid = 4242;
  known.comm = "\xff\xfe<b>\"x\n";
  known.parent_pid = 1;
  known.parent_comm = "<script>";
  known.exit_unix_seconds = 1000 - 192;
  snapshot.zombies.push_back(known);
  StatusZombie unknown_exit = known;
  unknown_exit.pid = 4343;
  unknown_exit.comm = "sleep";
  unknown_exit.exit_unix_seconds = 1000 - 12;
  unknown_exit.exit_time_known = false;
  snapshot.zombies.push_back(unknown_exit);
  return snapshot;
}

TEST(RenderStatusPageTest, HostileStringsAppearEscapedNeverRaw) {
  const std::string html = RenderStatusPage(HostileSnapshot());
  EXPECT_FALSE(Contains(html, "<script>"));
  EXPECT_FALSE(Contains(html, "<b>"));
  EXPECT_FALSE(Contains(html, "\xff"));
  EXPECT_FALSE(Contains(html, "\xfe"));
  EXPECT_TRUE(Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_TRUE(Contains(html, std::string(kReplacement) + kReplacement + "&lt;b&gt;&quot;x" + kReplacement));
  EXPECT_TRUE(Contains(html, "<td>&lt;script&gt;</td>"));
}

TEST(RenderStatusPageTest, IsACompleteDocumentWithTitleVersionAndLinks) {
  StatusSnapshot snapshot = HostileSnapshot();
  snapshot.telemetry_path = "/custom\"metrics";
  const std::string html = RenderStatusPage(snapshot);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(Contains(html, "<title>pidfd_exporter</title>"));
  EXPECT_TRUE(Contains(html, "</html>"));
  EXPECT_TRUE(Contains(html, "1.2.3"));
  EXPECT_TRUE(Contains(html, "abc123"));
  EXPECT_TRUE(Contains(html, "href=\"./custom&quot;metrics\""));
  EXPECT_TRUE(Contains(html, "href=\"./-/healthy\""));
  EXPECT_TRUE(Contains(html, "href=\"./-/ready\""));
  EXPECT_TRUE(Contains(html, "/etc/pidfd_exporter/config.yml"));
  EXPECT_TRUE(Contains(html, "<td>reap_events</td><td>yes</td>"));
  EXPECT_TRUE(Contains(html, "<td>exit_status</td><td>no</td>"));
  EXPECT_FALSE(Contains(html, "<script"));
  EXPECT_FALSE(Contains(html, "http://"));
  EXPECT_FALSE(Contains(html, "https://"));
}

TEST(RenderStatusPageTest, SetRowShowsCountsAgeAndLatencyQuantiles) {
  const std::string html = RenderStatusPage(HostileSnapshot());
  // watched, zombies, oldest zombie age, exits, recent exits, p50 (rank 5 of 10 ends
  // bucket 0..1ms → 1ms), p99 (rank 9.9: 4.9 of the 5 in 1..10ms → 9.82ms).
  EXPECT_TRUE(Contains(html,
                       "<td class=\"num\">4</td><td class=\"num\">2</td><td class=\"num\">3m12s</td>"
                       "<td class=\"num\">17</td><td class=\"num\">3</td>"
                       "<td class=\"num\">1ms</td><td class=\"num\">9.82ms</td>"))
      << html;
  EXPECT_TRUE(Contains(html, "Exits (last 5m)"));
}

TEST(RenderStatusPageTest, SetWithoutDataShowsDashes) {
  StatusSnapshot snapshot;
  StatusSet set;
  set.name = "idle";
  set.reap_latency_bounds = {0.1, 1};
  set.reap_latency_cumulative_counts = {0, 0, 0};
  snapshot.sets.push_back(set);
  const std::string html = RenderStatusPage(snapshot);
  EXPECT_TRUE(Contains(html,
                       "<td>idle</td><td class=\"num\">0</td><td class=\"num\">0</td>"
                       "<td class=\"num\">\xE2\x80\x93</td><td class=\"num\">0</td><td class=\"num\">0</td>"
                       "<td class=\"num\">\xE2\x80\x93</td><td class=\"num\">\xE2\x80\x93</td>"))
      << html;
  EXPECT_TRUE(Contains(html, "No zombies."));
}

TEST(RenderStatusPageTest, QuantileBeyondTheLastBucketIsShownAsLowerBound) {
  StatusSnapshot snapshot;
  StatusSet set;
  set.name = "slow";
  set.reap_latency_bounds = {0.1, 60};
  set.reap_latency_cumulative_counts = {0, 0, 3};
  snapshot.sets.push_back(set);
  const std::string html = RenderStatusPage(snapshot);
  EXPECT_TRUE(Contains(html, "<td class=\"num\">&gt; 1m</td><td class=\"num\">&gt; 1m</td>")) << html;
}

TEST(RenderStatusPageTest, ZombieRowsInGivenOrderWithAtLeastAgeWhenExitTimeUnknown) {
  const std::string html = RenderStatusPage(HostileSnapshot());
  const size_t first = html.find("<td class=\"num\">4242</td>");
  const size_t second = html.find("<td class=\"num\">4343</td>");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_LT(first, second);
  EXPECT_TRUE(Contains(html, "<td class=\"num\">1</td><td>&lt;script&gt;</td><td class=\"num\">3m12s</td>"));
  EXPECT_TRUE(Contains(html,
                       "<td>sleep</td><td class=\"num\">1</td><td>&lt;script&gt;</td>"
                       "<td class=\"num\">\xE2\x89\xA5 12s</td>"))
      << html;
}

}  // namespace
}  // namespace pidfd_exporter
