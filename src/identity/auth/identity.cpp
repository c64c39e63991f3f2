#include <oe/auth/identity.hpp>

#include <algorithm>

#include <oe/kernel/event_store.hpp>

namespace oe::auth {

std::optional<Role> parse_role(std::string_view text) {
    if (text == "reseller") {
        return Role::reseller;
    }
    if (text == "agent") {
        return Role::agent;
    }
    if (text == "admin") {
        return Role::admin;
    }
    if (text == "finance") {
        return Role::finance;
    }
    return std::nullopt;
}

std::string_view to_string(Role role) {
    switch (role) {
        case Role::reseller:
            return "reseller";
        case Role::agent:
            return "agent";
        case Role::admin:
            return "admin";
        case Role::finance:
            return "finance";
    }
    return "reseller";
}

bool allows(Role role, Permission permission) {
    const bool reseller = role == Role::reseller;
    const bool agent = role == Role::agent;
    const bool admin = role == Role::admin;
    const bool finance = role == Role::finance;
    switch (permission) {
        case Permission::place_order:
        case Permission::list_own_orders:
        case Permission::view_catalog:
        case Permission::view_credit:
            return reseller || agent;
        case Permission::view_any_order:
            return admin || finance;
        case Permission::cancel_order:
            return reseller || agent || admin;
        case Permission::manage_config:
        case Permission::manage_master_data:
        case Permission::manage_projections:
        case Permission::manage_erp:
            return admin;
        case Permission::view_config_history:
        case Permission::release_credit_hold:
        case Permission::read_events:
            return admin || finance;
        case Permission::audit_orders:
        case Permission::replay:
            return finance;
    }
    return false;
}

Result<ActingFor, AuthRejected> acting_for(const Principal& principal,
                                           std::optional<std::string_view> on_behalf_of) {
    if (principal.role == Role::reseller) {
        if (on_behalf_of && *on_behalf_of != principal.partner_id) {
            return AuthRejected::not_your_partner;
        }
        return ActingFor{principal.partner_id, principal.subject, {}};
    }
    if (principal.role == Role::agent) {
        if (!on_behalf_of) {
            return AuthRejected::partner_required;
        }
        const auto& list = principal.partners;
        if (std::find(list.begin(), list.end(), *on_behalf_of) == list.end()) {
            return AuthRejected::not_your_partner;
        }
        return ActingFor{std::string(*on_behalf_of), principal.subject, std::string(*on_behalf_of)};
    }
    return AuthRejected::forbidden;
}

bool may_view_order(const Principal& principal, std::string_view order_partner) {
    switch (principal.role) {
        case Role::admin:
        case Role::finance:
            return true;
        case Role::reseller:
            return principal.partner_id == order_partner;
        case Role::agent:
            return std::find(principal.partners.begin(), principal.partners.end(), order_partner) !=
                   principal.partners.end();
    }
    return false;
}

std::optional<PartnerProfile> PartnerDirectory::find(std::string_view partner_id) const {
    const auto rows =
        store_.query("SELECT partner_id, name, tier, region FROM rm_partners WHERE partner_id = $1",
                     {std::string(partner_id)});
    if (rows.empty()) {
        return std::nullopt;
    }
    const auto tier = events::parse_tier(rows[0][2].value_or(""));
    if (!tier) {
        throw StoreError("rm_partners holds an unknown tier for " + std::string(partner_id));
    }
    return PartnerProfile{rows[0][0].value_or(""), rows[0][1].value_or(""), *tier,
                          rows[0][3].value_or("")};
}

}  // namespace oe::auth
