// Splitting of kernel text (/proc files, mountinfo, cgroup files) into lines and fields, as
// views into the caller's buffer. Stateless; any thread may call these.
#pragma once

#include <string_view>
#include <type_traits>
#include <vector>

namespace pidfd_exporter {

// Splits `text` at `separator`; empty pieces are kept ("a,,b" → "a", "", "b").
inline std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  while (true) {
    const size_t stop = text.find(separator, start);
    if (stop == std::string_view::npos) {
      pieces.push_back(text.substr(start));
      return pieces;
    }
    pieces.push_back(text.substr(start, stop - start));
    start = stop + 1;
  }
}

// Calls visit(line) for every '\n'-terminated (or final unterminated) line. A visitor that
// returns bool stops the walk by returning false; one that returns nothing sees every line.
template <typename Visitor>
void ForEachLine(std::string_view text, Visitor&& visit) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    if constexpr (std::is_same_v<std::invoke_result_t<Visitor&, std::string_view>, bool>) {
      if (!visit(line)) return;
    } else {
      visit(line);
    }
    if (end == std::string_view::npos) return;
    text.remove_prefix(end + 1);
  }
}

}  // namespace pidfd_exporter
