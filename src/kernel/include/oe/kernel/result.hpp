#pragma once

#include <utility>
#include <variant>

#include <oe/kernel/invariant.hpp>

namespace oe {

/// Either a value or an expected failure. Expected failures are values (a conflicting append,
/// a rejected order); bugs are invariants; exceptions are for I/O edges.
template <typename T, typename E>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & {
        OE_INVARIANT(ok(), "Result::value() on an error");
        return std::get<0>(v_);
    }
    const T& value() const& {
        OE_INVARIANT(ok(), "Result::value() on an error");
        return std::get<0>(v_);
    }
    T&& value() && {
        OE_INVARIANT(ok(), "Result::value() on an error");
        return std::get<0>(std::move(v_));
    }
    const E& error() const& {
        OE_INVARIANT(!ok(), "Result::error() on a value");
        return std::get<1>(v_);
    }

  private:
    std::variant<T, E> v_;
};

}  // namespace oe
