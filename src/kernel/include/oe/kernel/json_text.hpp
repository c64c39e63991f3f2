#pragma once

#include <string>
#include <string_view>

namespace oe {

/// Appends `value` to `out` as a JSON string literal (quotes included), escaping per RFC 8259.
void append_json_string(std::string& out, std::string_view value);

/// True when `text` is one well-formed JSON object (and nothing else).
[[nodiscard]] bool is_json_object(std::string_view text);

}  // namespace oe
