#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <oe/erp/erp_port.hpp>

namespace oe::erp {

/// Where the legacy ERP listens: `http://host:port[/base-path]` (plain HTTP; the ERP sits on a
/// private network).
struct ErpEndpoint {
    std::string host;
    std::uint16_t port = 80;
    std::string base_path;  // Without a trailing '/'; may be empty.
};

/// Parses ERP_URL; nothing when it is not a usable http:// URL.
[[nodiscard]] std::optional<ErpEndpoint> parse_erp_url(const std::string& url);

/// The ERP over its wire format (docs/erp-wire-format.md): keep-alive connections (one per
/// concurrent caller), a deadline on every call, responses read strictly.
[[nodiscard]] std::unique_ptr<ErpPort> make_http_erp(
    ErpEndpoint endpoint, std::chrono::milliseconds timeout = std::chrono::milliseconds(5'000));

}  // namespace oe::erp
