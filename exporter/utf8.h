// Utf8: the one UTF-8 validity rule that label values (metrics), regex input (process_set)
// and the status page (status_page) share. Pure functions; any thread may call them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pidfd_exporter {

// Length (1-4) of the valid UTF-8 sequence at the start of `text`, or 0 when it is invalid
// (a stray continuation byte, an overlong form, a surrogate, above U+10FFFF, truncated).
size_t ValidUtf8SequenceLength(std::string_view text);

// The UTF-8 encoding of U+FFFD, which stands in for every invalid byte.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

// `text` with each byte that starts no valid sequence replaced by U+FFFD, as Go decodes it.
std::string ReplaceInvalidUtf8(std::string_view text);

}  // namespace pidfd_exporter
