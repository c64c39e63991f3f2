#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <oe/events/tier.hpp>
#include <oe/kernel/result.hpp>

namespace oe {
class EventStore;
}

namespace oe::auth {

/// The roles of SPEC §6.
enum class Role : std::uint8_t { reseller, agent, admin, finance };

[[nodiscard]] std::optional<Role> parse_role(std::string_view text);
[[nodiscard]] std::string_view to_string(Role role);

/// Who is calling, as a validated token says (issue 4 validates the JWT).
struct Principal {
    std::string subject;  // `sub`
    Role role = Role::reseller;
    std::string partner_id;             // A reseller's own partner.
    std::vector<std::string> partners;  // The partners an agent may act for.
};

/// What a route needs (SPEC §6's table, one entry per kind of route).
enum class Permission : std::uint8_t {
    place_order,          // POST /api/orders
    view_any_order,       // GET /api/orders/{id} for any partner
    list_own_orders,      // GET /api/orders
    cancel_order,         // POST /api/orders/{id}/cancel
    view_catalog,         // GET /api/catalog
    view_credit,          // GET /api/credit
    manage_config,        // /api/admin/config, PUT /api/admin/tiers/{tier}
    view_config_history,  // GET /api/admin/config/{key}/history
    manage_master_data,   // partners, products, warehouses
    release_credit_hold,  // POST /api/admin/orders/{id}/release-credit-hold
    manage_projections,   // /api/admin/projections
    manage_erp,           // /api/admin/erp, dead letters, sync
    audit_orders,         // GET /api/finance/orders/{id}/audit
    replay,               // GET /api/finance/replay
    read_events,          // GET /api/events
};

/// The permission table of SPEC §6.
[[nodiscard]] bool allows(Role role, Permission permission);

/// Why a principal may not act as asked. Numbers are API; never reuse one.
enum class AuthRejected : std::uint8_t {
    forbidden = 1,         // 403: the role may not do this.
    not_your_partner = 2,  // An agent naming a partner outside its list, or a reseller another.
    partner_required = 3,  // An agent must say for whom it acts (X-On-Behalf-Of).
};

/// For whom a request acts and who did it (the actor / on_behalf_of of every event).
struct ActingFor {
    std::string partner_id;
    std::string actor;         // The principal's subject.
    std::string on_behalf_of;  // The partner, when an agent acts for it; empty otherwise.
};

/// The partner a reseller or agent request acts for (agent masquerade, SPEC §6): a reseller
/// acts for its own partner (an X-On-Behalf-Of naming another is refused); an agent acts for
/// the partner named in X-On-Behalf-Of, which must be in its list.
[[nodiscard]] Result<ActingFor, AuthRejected> acting_for(
    const Principal& principal, std::optional<std::string_view> on_behalf_of);

/// May the principal see an order placed for `order_partner`? Owner, an agent of the owner,
/// admin and finance may; everyone else gets the same 404 as for an unknown order (BOLA).
[[nodiscard]] bool may_view_order(const Principal& principal, std::string_view order_partner);

/// A partner's tier and region, as the pricing and routing contexts need them.
struct PartnerProfile {
    std::string partner_id;
    std::string name;
    events::Tier tier = events::Tier::bronze;
    std::string region;
};

/// Looks partners up in the partners read model.
class PartnerDirectory {
  public:
    explicit PartnerDirectory(EventStore& store) : store_(store) {}
    /// Throws StoreError when the store is unreachable.
    [[nodiscard]] std::optional<PartnerProfile> find(std::string_view partner_id) const;

  private:
    EventStore& store_;
};

}  // namespace oe::auth
