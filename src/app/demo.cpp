#include <oe/app/demo.hpp>

#include <stdexcept>
#include <string>

#include <oe/commands/command_service.hpp>
#include <oe/kernel/time.hpp>

namespace oe::app {

namespace {

struct DemoProduct {
    const char* sku;
    const char* name;
    std::int64_t base_price_idr;
    std::int64_t buffer_qty;
    std::int64_t on_hand_jakarta;
    std::int64_t on_hand_surabaya;
};

constexpr DemoProduct catalogue[] = {
    {"SRM-VITC-30", "Vitamin C Brightening Serum 30ml", 189'000, 10, 400, 250},
    {"SRM-NIAC-30", "Niacinamide 10% Serum 30ml", 145'000, 10, 520, 300},
    {"SRM-HYAL-30", "Hyaluronic Acid Serum 30ml", 159'500, 10, 350, 200},
    {"SRM-RETI-15", "Retinol 0.3% Night Serum 15ml", 229'000, 5, 120, 80},
    {"TNR-ROSE-100", "Rose Water Toner 100ml", 65'000, 20, 900, 600},
    {"TNR-AHA-150", "AHA/BHA Exfoliating Toner 150ml", 98'750, 15, 300, 240},
    {"CLN-GEL-100", "Gentle Gel Cleanser 100ml", 54'900, 20, 1'000, 800},
    {"CLN-OIL-150", "Cleansing Oil 150ml", 119'000, 10, 260, 180},
    {"MST-AQUA-50", "Aqua Gel Moisturizer 50ml", 135'000, 10, 420, 310},
    {"MST-CERA-50", "Ceramide Barrier Cream 50ml", 175'000, 10, 280, 150},
    {"SNS-SPF50-50", "Sunscreen SPF50 PA++++ 50ml", 89'900, 25, 1'500, 1'100},
    {"SNS-STICK-15", "Sunscreen Stick SPF50 15g", 99'000, 10, 350, 260},
    {"MSK-CLAY-100", "Kaolin Clay Mask 100g", 79'000, 10, 300, 220},
    {"MSK-SHEET-5", "Hydrating Sheet Mask x5", 49'500, 30, 2'000, 1'400},
    {"LIP-TINT-01", "Lip Tint Coral 4g", 45'000, 20, 800, 650},
    {"LIP-TINT-02", "Lip Tint Berry 4g", 45'000, 20, 760, 600},
    {"LIP-BALM-10", "Honey Lip Balm 10g", 29'900, 25, 1'200, 900},
    {"EYE-CRM-15", "Caffeine Eye Cream 15ml", 149'000, 5, 180, 120},
    {"BDY-LOT-250", "Brightening Body Lotion 250ml", 85'000, 15, 640, 500},
    {"BDY-WASH-500", "Shea Body Wash 500ml", 72'500, 15, 700, 560},
    {"HAIR-OIL-60", "Argan Hair Oil 60ml", 110'000, 10, 240, 200},
    {"HAIR-SHP-300", "Anti-Dandruff Shampoo 300ml", 68'000, 15, 850, 700},
    {"CUS-BB-30", "BB Cushion Natural 15g", 199'000, 5, 220, 160},
    {"PWD-LOOSE-20", "Loose Setting Powder 20g", 87'500, 10, 330, 260},
};

template <typename Command>
void must(commands::CommandService& service, const Command& command, std::size_t& applied) {
    EventMetadata metadata;
    metadata.actor = "demo-seed";
    auto result = service.execute(command, metadata);
    if (!result.ok()) {
        throw std::runtime_error("demo data: " + result.error().message);
    }
    ++applied;
}

}  // namespace

std::size_t load_demo_data(commands::CommandService& service) {
    using namespace commands;
    std::size_t applied = 0;
    must(service,
         RegisterWarehouse{"WH-JKT", {{"ID-JK", 24}, {"ID-JB", 48}, {"ID-BT", 36}, {"ID-JT", 72}}},
         applied);
    must(service,
         RegisterWarehouse{"WH-SBY", {{"ID-JI", 24}, {"ID-JT", 36}, {"ID-BA", 48}, {"ID-JK", 72}}},
         applied);
    must(service, RegisterPartner{"P-001", "Toko Cantik Menteng", "BRONZE", "ID-JK", 5'000'000},
         applied);
    must(service, RegisterPartner{"P-002", "Beauty Corner Bandung", "SILVER", "ID-JB", 12'000'000},
         applied);
    must(service, RegisterPartner{"P-003", "Glow Store Kemang", "GOLD", "ID-JK", 30'000'000},
         applied);
    must(service, RegisterPartner{"P-004", "Surabaya Skin Hub", "PLATINUM", "ID-JI", 75'000'000},
         applied);
    must(service, RegisterPartner{"P-005", "Semarang Beauty Mart", "GOLD", "ID-JT", 20'000'000},
         applied);
    must(service, RegisterPartner{"P-006", "Bali Glow Reseller", "SILVER", "ID-BA", 8'000'000},
         applied);
    must(service, RegisterPartner{"P-007", "Tangerang Kosmetik", "BRONZE", "ID-BT", 2'500'000},
         applied);
    RecordStockLevels stock{now_us(), {}};
    for (const auto& p : catalogue) {
        must(service, RegisterProduct{p.sku, p.name, p.base_price_idr, p.buffer_qty}, applied);
        stock.levels.push_back({p.sku, "WH-JKT", p.on_hand_jakarta});
        stock.levels.push_back({p.sku, "WH-SBY", p.on_hand_surabaya});
    }
    must(service, stock, applied);
    // One partner already owes the ERP something, so the credit view has a story.
    must(service, RecordPartnerDebt{"P-002", 4'500'000, now_us()}, applied);
    return applied;
}

}  // namespace oe::app
