// Pure tests of the decisions: a CommerceState folded from hand-made events, no store, no
// clock. Same state and command, same result.

#include <doctest/doctest.h>

#include <oe/commands/commands.hpp>
#include <oe/erp/erp_port.hpp>
#include <oe/events/events.hpp>

using namespace oe;
using namespace oe::commands;

namespace {

/// Folds domain events into a state as if they had been committed in this order.
class History {
  public:
    History& then(const events::DomainEvent& e, std::int64_t recorded_at_us = 1'000'000) {
        NewEvent encoded = events::encode(e);
        ++position_;
        state_.apply(RecordedEvent{position_, "s", position_, encoded.type, encoded.schema_version,
                                   encoded.data, "{}", recorded_at_us});
        return *this;
    }
    const model::CommerceState& state() const { return state_; }

  private:
    model::CommerceState state_;
    std::int64_t position_ = 0;
};

History shop() {
    History h;
    h.then(events::WarehouseRegistered{"WH-A", {{"ID-JK", 24}}})
        .then(events::WarehouseRegistered{"WH-B", {{"ID-JK", 24}}})
        .then(events::ProductRegistered{"S-1", "Serum", 250'000, 2})
        .then(events::PartnerRegistered{"P-1", "One", events::Tier::silver, "ID-JK", 1'000'000})
        .then(events::StockLevelsSynced{500'000, {{"S-1", "WH-A", 5}, {"S-1", "WH-B", 12}}});
    return h;
}

EventMetadata agent_for(std::string partner) {
    EventMetadata m;
    m.actor = "agent-3";
    m.on_behalf_of = std::move(partner);
    return m;
}

}  // namespace

TEST_SUITE("decide") {
    TEST_CASE("the write model finds every order by id after copies and moves") {
        auto h = shop();
        // Ids out of order: the map keeps id order, the index finds each.
        for (const char* id : {"O-20", "O-03", "O-99", "O-10"}) {
            events::OrderPlaced placed;
            placed.order_id = id;
            placed.partner_id = "P-1";
            placed.tier = events::Tier::silver;
            placed.lines = {{"S-1", 1, 250'000, 237'500, 500, 237'500}};
            placed.subtotal_idr = 237'500;
            h.then(placed);
        }
        const auto check = [](const model::CommerceState& state) {
            std::vector<std::string> ids;
            for (const auto& [id, order] : state.orders()) {
                ids.push_back(id);
                REQUIRE(state.order(id) == &order);  // The index points into this state.
            }
            CHECK(ids == std::vector<std::string>{"O-03", "O-10", "O-20", "O-99"});
            CHECK(state.order("O-04") == nullptr);
            REQUIRE(state.order("O-99") != nullptr);
            CHECK(state.order("O-99")->placed.lines.at(0).sku == "S-1");
            CHECK(state.order("O-99")->lines.at(0).sku == "S-1");
        };
        check(h.state());
        model::CommerceState copy = h.state();
        check(copy);
        model::CommerceState assigned;
        assigned = copy;
        check(assigned);
        model::CommerceState moved = std::move(copy);
        check(moved);
        check(h.state());  // The original still answers from its own entries.
    }

    TEST_CASE("PlaceOrder: tie on SLA goes to the lowest id that can fulfil; metadata recorded") {
        const auto h = shop();
        // SILVER 5 %: 237,500. 3 fit WH-A (5 − 2 buffer); 4 do not, so WH-B.
        auto three =
            decide(PlaceOrder{"O-1", "P-1", {{"S-1", 3}}, ""}, h.state(), agent_for("P-1"));
        REQUIRE(three.ok());
        CHECK(three.value()[0].events[1].data.find("\"WH-A\"") != std::string::npos);
        CHECK(three.value()[0].events[0].metadata.on_behalf_of == "P-1");
        auto four = decide(PlaceOrder{"O-2", "P-1", {{"S-1", 4}}, ""}, h.state(), agent_for("P-1"));
        REQUIRE(four.ok());
        CHECK(four.value()[0].events[1].data.find("\"WH-B\"") != std::string::npos);
        // Pure: the same inputs give byte-identical events.
        auto again =
            decide(PlaceOrder{"O-2", "P-1", {{"S-1", 4}}, ""}, h.state(), agent_for("P-1"));
        CHECK(again.value()[0].events[0].data == four.value()[0].events[0].data);
    }

    TEST_CASE("PlaceOrder: credit is checked before stock; a held order reserves nothing") {
        auto h = shop();
        // 5 × 237,500 = 1,187,500 > 1,000,000 and more than any warehouse holds: still on hold.
        auto held = decide(PlaceOrder{"O-1", "P-1", {{"S-1", 50}}, ""}, h.state(), {});
        REQUIRE(held.ok());
        CHECK(held.value()[0].events[1].type == "OrderCreditHeld");
        h.then(std::get<events::OrderPlaced>(
                   events::decode("OrderPlaced", 1, held.value()[0].events[0].data).value()))
            .then(events::OrderCreditHeld{"O-1", "P-1", 11'875'000, 1'000'000});
        CHECK(h.state().available("S-1", "WH-A") == 3);
        CHECK(h.state().credit_position(*h.state().partner("P-1")).available_idr() == 1'000'000);
    }

    TEST_CASE("PlaceOrder: a snapshot older than the acceptance keeps the reservation") {
        auto h = shop();
        h.then(events::OrderPlaced{"O-1",
                                   "P-1",
                                   events::Tier::silver,
                                   "ID-JK",
                                   500,
                                   125,
                                   {{"S-1", 3, 250'000, 237'500, 500, 712'500}},
                                   712'500,
                                   890,
                                   0,
                                   "",
                                   "u",
                                   ""})
            .then(events::OrderRouted{"O-1", "WH-A", {{"S-1", 3}}})
            .then(events::OrderSentToErp{"O-1"})
            .then(events::OrderAcceptedByErp{"O-1", "ERP-1"}, /*recorded_at_us=*/2'000'000);
        CHECK(h.state().available("S-1", "WH-A") == 0);
        // Taken before the acceptance: does not reflect it.
        h.then(events::StockLevelsSynced{1'500'000, {{"S-1", "WH-A", 5}}});
        CHECK(h.state().available("S-1", "WH-A") == 0);
        // Taken after: the ERP's on_hand includes the order now.
        h.then(events::StockLevelsSynced{2'500'000, {{"S-1", "WH-A", 2}}});
        CHECK(h.state().available("S-1", "WH-A") == 0);
        CHECK(h.state().stock("S-1", "WH-A")->reserved == 0);
        // Credit: accepted orders count until the next debt sync.
        CHECK(h.state().partner("P-1")->open_orders_total_idr == 712'500);
        h.then(events::PartnerDebtSynced{"P-1", 712'500, 3'000'000});
        CHECK(h.state().partner("P-1")->open_orders_total_idr == 0);
        CHECK(h.state().credit_position(*h.state().partner("P-1")).available_idr() == 287'500);
    }

    TEST_CASE("ERP rejection frees stock and credit; cancel is refused after it") {
        auto h = shop();
        h.then(events::OrderPlaced{"O-1",
                                   "P-1",
                                   events::Tier::silver,
                                   "ID-JK",
                                   500,
                                   125,
                                   {{"S-1", 2, 250'000, 237'500, 500, 475'000}},
                                   475'000,
                                   593,
                                   0,
                                   "",
                                   "u",
                                   ""})
            .then(events::OrderRouted{"O-1", "WH-A", {{"S-1", 2}}})
            .then(events::OrderSentToErp{"O-1"})
            .then(events::OrderRejectedByErp{"O-1", "blocked customer"});
        CHECK(h.state().available("S-1", "WH-A") == 3);
        CHECK(h.state().partner("P-1")->open_orders_total_idr == 0);
        auto cancel = decide(CancelOrder{"O-1"}, h.state(), {});
        REQUIRE_FALSE(cancel.ok());
        CHECK(cancel.error().reason == Rejected::not_cancellable);
        CHECK(code(cancel.error().reason) == "not_cancellable");
    }

}  // TEST_SUITE

TEST_SUITE("erp acl") {
    TEST_CASE("stock and debt reports: unknown ids, negative values and duplicates are refused") {
        const erp::KnownIds known{{"S-1", "S-2"}, {"WH-A"}, {"P-1"}};
        const auto stock = erp::translate(erp::StockReport{7,
                                                           {{"S-1", "WH-A", 4},
                                                            {"S-9", "WH-A", 1},
                                                            {"S-2", "WH-Z", 1},
                                                            {"S-2", "WH-A", -3},
                                                            {"S-1", "WH-A", 5}}},
                                          known);
        REQUIRE(stock.event);
        CHECK(stock.event->as_of_us == 7);
        REQUIRE(stock.event->levels.size() == 1);
        CHECK(stock.event->levels[0].on_hand == 4);
        CHECK(stock.refused.size() == 4);
        CHECK(stock.refused[0].why == "unknown sku");
        CHECK(stock.refused[3].why == "reported twice");
        CHECK_FALSE(erp::translate(erp::StockReport{1, {{"S-9", "WH-A", 1}}}, known).event);

        const auto debt =
            erp::translate(erp::DebtReport{9, {{"P-1", 100}, {"P-2", 5}, {"P-1", -1}}}, known);
        REQUIRE(debt.events.size() == 1);
        CHECK(debt.events[0].outstanding_idr == 100);
        CHECK(debt.events[0].as_of_us == 9);
        CHECK(debt.refused.size() == 2);
    }

}  // TEST_SUITE
