#include <oe/commands/command_service.hpp>

#include <chrono>
#include <random>

#include <fmt/format.h>

namespace oe::commands {

std::string CommandService::new_order_id() {
    static constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford base32.
    thread_local std::mt19937_64 random{std::random_device{}()};
    const auto ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::string id = "O-";
    id.resize(2 + 26);
    // 48 bits of time in 10 characters, then 80 random bits in 16.
    for (int i = 9; i >= 0; --i) {
        id[2 + static_cast<std::size_t>(9 - i)] = alphabet[(ms >> (5 * i)) & 31U];
    }
    const std::uint64_t high = random();
    const std::uint64_t low = random();
    for (int i = 0; i < 16; ++i) {
        const std::uint64_t bits = i < 8 ? high >> (5 * i) : low >> (5 * (i - 8));
        id[12 + static_cast<std::size_t>(i)] = alphabet[bits & 31U];
    }
    return id;
}

Rejection CommandService::store_rejection(const AppendError& error) {
    if (error.reason == AppendRejected::wrong_expected_version) {
        // Decisions run against exact state, so only a stream that exists although the
        // decision expected it not to (an order id reused) can conflict here.
        return Rejection{Rejected::already_exists,
                         fmt::format("stream {} already exists", error.stream_id), error.stream_id};
    }
    return Rejection{Rejected::invalid_request, error.message, {}};
}

}  // namespace oe::commands
