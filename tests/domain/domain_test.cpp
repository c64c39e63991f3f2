// Pure tests of the business rules of SPEC §4, module by module.

#include <doctest/doctest.h>

#include <oe/auth/identity.hpp>
#include <oe/credit/credit.hpp>
#include <oe/inventory/inventory.hpp>
#include <oe/kernel/invariant.hpp>
#include <oe/pricing/pricing.hpp>
#include <oe/routing/routing.hpp>

using namespace oe;

TEST_SUITE("commercial") {
    TEST_CASE("pricing: unit price rounds half up at the boundary") {
        CHECK(pricing::unit_price_idr(10'001, 5'000) == 5'001);  // 5000.5 -> 5001
        CHECK(pricing::unit_price_idr(10'000, 5'000) == 5'000);
        CHECK(pricing::unit_price_idr(10'003, 5'000) == 5'002);   // 5001.5 -> 5002
        CHECK(pricing::unit_price_idr(99'999, 1'500) == 84'999);  // 84999.15 -> 84999
        CHECK(pricing::unit_price_idr(99'990, 1'500) == 84'992);  // 84991.5 -> 84992
        CHECK(pricing::unit_price_idr(125'000, 1'000) == 112'500);
        CHECK(pricing::unit_price_idr(1, 5'000) == 1);  // 0.5 -> 1
        CHECK(pricing::unit_price_idr(1, 5'001) == 0);  // 0.4999 -> 0
        CHECK(pricing::unit_price_idr(0, 0) == 0);
        CHECK(pricing::unit_price_idr(pricing::base_price_idr_max, 0) ==
              pricing::base_price_idr_max);
        CHECK_THROWS_AS((void)pricing::unit_price_idr(-1, 0), InvariantViolation);
    }

    TEST_CASE("pricing: loyalty points floor at one point per 1,000 IDR times the multiplier") {
        CHECK(pricing::loyalty_points(1'590'300, 150) == 2'385);  // 2385.45
        CHECK(pricing::loyalty_points(999, 100) == 0);
        CHECK(pricing::loyalty_points(1'000, 100) == 1);
        CHECK(pricing::loyalty_points(1'999, 200) == 3);  // 3.998
        CHECK(pricing::loyalty_points(500'000, 125) == 625);
        // The largest possible subtotal at the largest multiplier does not overflow.
        const std::int64_t huge = 200 * pricing::line_qty_max * pricing::base_price_idr_max;
        CHECK(pricing::loyalty_points(huge, 1'000) == huge / 100);
    }

    TEST_CASE("pricing: unknown SKU comes before the minimum order; exact minimum passes") {
        const pricing::BasePriceLookup catalogue =
            [](std::string_view sku) -> std::optional<std::int64_t> {
            if (sku == "S-1") {
                return 100'000;
            }
            if (sku == "S-2") {
                return 33'333;
            }
            return std::nullopt;
        };
        const pricing::TierTerms gold{1'000, 150};
        auto unknown = pricing::price_order({{"S-1", 1}, {"NOPE", 1}}, catalogue, gold, 10'000'000);
        REQUIRE_FALSE(unknown.ok());
        CHECK(unknown.error().reason == pricing::PricingRejected::unknown_sku);
        CHECK(unknown.error().sku == "NOPE");

        auto below = pricing::price_order({{"S-1", 5}}, catalogue, gold, 450'001);
        REQUIRE_FALSE(below.ok());
        CHECK(below.error().reason == pricing::PricingRejected::below_minimum_order);
        CHECK(below.error().subtotal_idr == 450'000);

        auto exact = pricing::price_order({{"S-1", 5}, {"S-2", 3}}, catalogue, gold, 540'000);
        REQUIRE(exact.ok());
        CHECK(exact.value().lines[1].unit_price_idr == 30'000);  // 29999.7 -> 30000
        CHECK(exact.value().lines[1].line_total_idr == 90'000);
        CHECK(exact.value().subtotal_idr == 540'000);
        CHECK(exact.value().loyalty_points == 810);
    }

    TEST_CASE("credit: available credit and the hold decision at the exact limit") {
        credit::CreditPosition position{1'000'000, 200'000, 300'000};
        CHECK(position.available_idr() == 500'000);
        CHECK(credit::decide_credit(500'000, position) == credit::CreditDecision::within_limit);
        CHECK(credit::decide_credit(500'001, position) == credit::CreditDecision::hold);
        credit::CreditPosition over{100, 500, 0};
        CHECK(over.available_idr() == -400);
        CHECK(credit::decide_credit(0, over) == credit::CreditDecision::hold);
    }

}  // TEST_SUITE

TEST_SUITE("supply chain") {
    TEST_CASE("inventory: available subtracts reservations and the buffer; zero is fulfilable") {
        CHECK(inventory::available(100, 30, 20) == 50);
        CHECK(inventory::can_fulfil(50, inventory::available(100, 30, 20)));
        CHECK_FALSE(inventory::can_fulfil(51, inventory::available(100, 30, 20)));
        CHECK(inventory::available(10, 0, 20) == -10);
    }

    TEST_CASE("routing: lowest SLA for the region that fulfils every line; ties by warehouse id") {
        routing::Warehouse jakarta{"WH-JKT", {{"ID-JK", 24}, {"ID-JB", 48}}};
        routing::Warehouse bandung{"WH-BDG", {{"ID-JB", 24}, {"ID-JK", 24}}};
        routing::Warehouse surabaya{"WH-SBY", {{"ID-JI", 24}}};
        const std::vector<const routing::Warehouse*> all{&jakarta, &bandung, &surabaya};
        std::map<std::pair<std::string, std::string>, std::int64_t> stock{
            {{"S-1", "WH-JKT"}, 10}, {{"S-1", "WH-BDG"}, 10}, {{"S-2", "WH-JKT"}, 5},
            {{"S-2", "WH-BDG"}, 1},  {{"S-1", "WH-SBY"}, 99}, {{"S-2", "WH-SBY"}, 99}};
        const routing::Availability available = [&](std::string_view sku, std::string_view wh) {
            const auto found = stock.find({std::string(sku), std::string(wh)});
            return found == stock.end() ? std::int64_t{0} : found->second;
        };
        // ID-JK: both 24 h; the tie goes to the lower id, WH-BDG, which has everything.
        CHECK(routing::route({{"S-1", 10}, {"S-2", 1}}, "ID-JK", all, available) == "WH-BDG");
        // WH-BDG cannot do 2 of S-2, so the order goes to WH-JKT (same SLA).
        CHECK(routing::route({{"S-1", 10}, {"S-2", 2}}, "ID-JK", all, available) == "WH-JKT");
        // ID-JB: WH-BDG (24 h) before WH-JKT (48 h).
        CHECK(routing::route({{"S-2", 5}}, "ID-JB", all, available) == "WH-JKT");
        CHECK(routing::route({{"S-2", 1}}, "ID-JB", all, available) == "WH-BDG");
        // A single warehouse must fulfil all lines; stock is never split.
        CHECK_FALSE(routing::route({{"S-1", 11}}, "ID-JK", all, available));
        // A region no warehouse lists is not served, however much stock exists.
        CHECK_FALSE(routing::route({{"S-1", 1}}, "ID-PA", all, available));
        CHECK(routing::serving("ID-JB", all).front()->warehouse_id == "WH-BDG");
    }

}  // TEST_SUITE

TEST_SUITE("identity") {
    TEST_CASE("RBAC: the SPEC §6 permission table") {
        using auth::Permission;
        using auth::Role;
        CHECK(auth::allows(Role::reseller, Permission::place_order));
        CHECK(auth::allows(Role::agent, Permission::place_order));
        CHECK_FALSE(auth::allows(Role::admin, Permission::place_order));
        CHECK_FALSE(auth::allows(Role::finance, Permission::place_order));
        CHECK(auth::allows(Role::admin, Permission::cancel_order));
        CHECK_FALSE(auth::allows(Role::finance, Permission::cancel_order));
        CHECK(auth::allows(Role::finance, Permission::release_credit_hold));
        CHECK(auth::allows(Role::admin, Permission::release_credit_hold));
        CHECK_FALSE(auth::allows(Role::agent, Permission::release_credit_hold));
        CHECK(auth::allows(Role::finance, Permission::audit_orders));
        CHECK_FALSE(auth::allows(Role::admin, Permission::audit_orders));
        CHECK(auth::allows(Role::finance, Permission::view_config_history));
        CHECK_FALSE(auth::allows(Role::finance, Permission::manage_config));
        CHECK_FALSE(auth::allows(Role::reseller, Permission::read_events));
        CHECK(auth::parse_role("agent") == Role::agent);
        CHECK_FALSE(auth::parse_role("Admin"));
    }

    TEST_CASE("masquerade: agents act only for their partners; resellers only for themselves") {
        const auth::Principal agent{"agent-1", auth::Role::agent, "", {"P-1", "P-2"}};
        const auth::Principal reseller{"user-9", auth::Role::reseller, "P-9", {}};
        const auth::Principal admin{"root", auth::Role::admin, "", {}};

        auto as_p2 = auth::acting_for(agent, "P-2");
        REQUIRE(as_p2.ok());
        CHECK(as_p2.value().partner_id == "P-2");
        CHECK(as_p2.value().actor == "agent-1");
        CHECK(as_p2.value().on_behalf_of == "P-2");
        CHECK(auth::acting_for(agent, "P-3").error() == auth::AuthRejected::not_your_partner);
        CHECK(auth::acting_for(agent, std::nullopt).error() ==
              auth::AuthRejected::partner_required);

        auto self = auth::acting_for(reseller, std::nullopt);
        REQUIRE(self.ok());
        CHECK(self.value().partner_id == "P-9");
        CHECK(self.value().on_behalf_of.empty());
        CHECK(auth::acting_for(reseller, "P-1").error() == auth::AuthRejected::not_your_partner);
        CHECK(auth::acting_for(admin, std::nullopt).error() == auth::AuthRejected::forbidden);

        CHECK(auth::may_view_order(reseller, "P-9"));
        CHECK_FALSE(auth::may_view_order(reseller, "P-1"));
        CHECK(auth::may_view_order(agent, "P-1"));
        CHECK_FALSE(auth::may_view_order(agent, "P-9"));
        CHECK(auth::may_view_order(admin, "P-1"));
    }

}  // TEST_SUITE
