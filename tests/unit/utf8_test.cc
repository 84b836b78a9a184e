// The shared UTF-8 rule and the label sanitizer built on it: whatever bytes a process puts in
// its name, a label value is valid UTF-8, has no control characters and is cut at 128 bytes on
// a character boundary.
#include "utf8.h"

#include <gtest/gtest.h>

#include "metrics.h"

namespace pidfd_exporter {
namespace {

TEST(Utf8Test, SequenceLengthsFollowRfc3629) {
  EXPECT_EQ(ValidUtf8SequenceLength("a"), 1u);
  EXPECT_EQ(ValidUtf8SequenceLength("\xC3\xA9"), 2u);          // é
  EXPECT_EQ(ValidUtf8SequenceLength("\xE2\x82\xAC"), 3u);      // €
  EXPECT_EQ(ValidUtf8SequenceLength("\xF0\x9F\x98\x80"), 4u);  // 😀
  EXPECT_EQ(ValidUtf8SequenceLength("\xFF"), 0u);
  EXPECT_EQ(ValidUtf8SequenceLength("\x80"), 0u);              // stray continuation
  EXPECT_EQ(ValidUtf8SequenceLength("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(ValidUtf8SequenceLength("\xED\xA0\x80"), 0u);      // surrogate
  EXPECT_EQ(ValidUtf8SequenceLength("\xF4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(ValidUtf8SequenceLength("\xE2\x82"), 0u);          // truncated
}

TEST(Utf8Test, ReplaceInvalidUtf8GivesOneReplacementPerBadByte) {
  EXPECT_EQ(ReplaceInvalidUtf8("te\xff<b>"), "te\xEF\xBF\xBD<b>");
  EXPECT_EQ(ReplaceInvalidUtf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(ReplaceInvalidUtf8("a\nb"), "a\nb");  // control characters stay (Go keeps them)
}

TEST(SanitizeLabelValueTest, HostileCommBecomesValidPrintableUtf8) {
  EXPECT_EQ(SanitizeLabelValue("\xff\xfe<b>\"x\n"), "\xEF\xBF\xBD\xEF\xBF\xBD<b>\"x\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeLabelValue("tab\there\x7f"), "tab\xEF\xBF\xBDhere\xEF\xBF\xBD");
  EXPECT_EQ(SanitizeLabelValue(""), "unknown");
}

TEST(SanitizeLabelValueTest, CutsOnACharacterBoundary) {
  std::string euros;
  for (int i = 0; i < 60; ++i) euros += "\xE2\x82\xAC";  // 180 bytes
  const std::string cut = SanitizeLabelValue(euros);
  EXPECT_EQ(cut.size(), 126u);  // 42 whole characters; a 43rd would pass 128 bytes
  EXPECT_EQ(ReplaceInvalidUtf8(cut), cut);
  EXPECT_EQ(SanitizeLabelValue(std::string(200, 'a'), 128).size(), 128u);
}

}  // namespace
}  // namespace pidfd_exporter
