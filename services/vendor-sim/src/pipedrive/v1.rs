//! Users and roles as Pipedrive's API v1 shows them (`BaseUser`, role assignments, the
//! permissions a role grants), and a user's `access` list read from a request.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::model::{Access, Holding, Role, User, APPS};
use super::wire::{ApiError, Fields};
use super::State;

/// A user as the API shows it (SDK model `BaseUser`; tokens are never shown). No `is_admin`:
/// Pipedrive removed it; admin rights are `access[].admin`.
#[derive(Serialize)]
pub(super) struct UserOut<'a> {
    pub(super) id: i64,
    pub(super) name: &'a str,
    pub(super) default_currency: &'a str,
    pub(super) locale: &'a str,
    pub(super) lang: i64,
    pub(super) email: &'a str,
    pub(super) phone: Option<&'a str>,
    pub(super) activated: bool,
    pub(super) created: &'a str,
    pub(super) modified: &'a str,
    pub(super) has_created_company: bool,
    pub(super) access: &'a [Access],
    pub(super) active_flag: bool,
    pub(super) timezone_name: &'a str,
    pub(super) timezone_offset: &'static str,
    /// An integer, not nullable: absent for a user without a role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) role_id: Option<i64>,
    pub(super) icon_url: Option<&'a str>,
    pub(super) is_you: bool,
}

impl State {
    /// `caller`: the token's user, for `is_you` (none outside a request).
    pub(super) fn user_out<'a>(&self, u: &'a User, caller: Option<i64>) -> UserOut<'a> {
        UserOut {
            id: u.id,
            name: &u.name,
            default_currency: &u.default_currency,
            locale: &u.locale,
            lang: 1,
            email: &u.email,
            phone: u.phone.as_deref(),
            activated: u.active,
            created: &u.created,
            modified: &u.modified,
            has_created_company: u.has_created_company,
            access: &u.access,
            active_flag: u.active,
            timezone_name: &u.timezone_name,
            timezone_offset: "+00:00",
            role_id: u.role.map(|h| h.role_id),
            icon_url: None,
            is_you: caller == Some(u.id),
        }
    }

    pub(super) fn user_json(&self, u: &User, caller: Option<i64>) -> Value {
        serde_json::to_value(self.user_out(u, caller)).unwrap_or_default()
    }

    /// A role as `/_sim/state` and `/_sim/seed` show it (an integer count, as they always did).
    pub(super) fn role_json(&self, r: &Role) -> Value {
        json!({
            "id": r.id,
            "name": r.name,
            "parent_role_id": r.parent_role_id,
            "active_flag": true,
            "assignment_count": self.assignment_count(r.id),
        })
    }

    /// A role as getRoles shows it: the counts are strings there, and `level` an integer.
    pub(super) fn role_out(&self, r: &Role) -> Value {
        let mut v = json!({
            "id": r.id,
            "name": r.name,
            "active_flag": true,
            "assignment_count": self.assignment_count(r.id).to_string(),
            "sub_role_count": self.roles.values().filter(|c| c.parent_role_id == Some(r.id)).count().to_string(),
            "level": 1 + self.depth(r),
        });
        if let Some(parent) = r.parent_role_id {
            v["parent_role_id"] = parent.into();
        }
        v
    }

    fn depth(&self, r: &Role) -> usize {
        let mut depth = 0;
        let mut at = r.parent_role_id;
        while let Some(parent) = at.and_then(|p| self.roles.get(&p)) {
            depth += 1;
            at = parent.parent_role_id;
            if depth > self.roles.len() {
                break;
            }
        }
        depth
    }

    /// A role assignment as getUserRoleAssignments and getRoleAssignments show it.
    pub(super) fn assignment_out(&self, user_id: i64, role_id: i64) -> Value {
        let role = self.roles.get(&role_id);
        let mut v = json!({
            "user_id": user_id,
            "role_id": role_id,
            "name": role.map(|r| r.name.as_str()).unwrap_or_default(),
            "active_flag": true,
            "type": "1",
        });
        if let Some(parent) = role.and_then(|r| r.parent_role_id) {
            v["parent_role_id"] = parent.into();
        }
        v
    }
}

/// An assignment as `/_sim/state` shows it.
pub(super) fn assignment_json(user_id: i64, h: Holding) -> Value {
    json!({
        "id": h.assignment_id,
        "role_id": h.role_id,
        "user_id": user_id,
        "active_flag": true,
    })
}

/// Which permission flags a user has, by tier: everyone, role holders, admins.
pub(super) const PERMISSIONS: &[(&str, Tier)] = &[
    ("can_add_products", Tier::RoleHolder),
    ("can_bulk_edit_items", Tier::Admin),
    ("can_change_visibility_of_items", Tier::RoleHolder),
    ("can_delete_activities", Tier::Everyone),
    ("can_delete_deals", Tier::RoleHolder),
    ("can_edit_deals_closed_date", Tier::Admin),
    ("can_edit_products", Tier::Admin),
    ("can_export_data_from_lists", Tier::RoleHolder),
    ("can_follow_other_users", Tier::RoleHolder),
    ("can_merge_deals", Tier::RoleHolder),
    ("can_merge_organizations", Tier::Admin),
    ("can_merge_people", Tier::Admin),
    ("can_modify_labels", Tier::Admin),
    ("can_see_company_wide_statistics", Tier::Admin),
    ("can_see_deals_list_summary", Tier::Everyone),
    ("can_see_hidden_users_and_teams", Tier::Admin),
    ("can_see_other_users", Tier::RoleHolder),
    ("can_see_other_users_statistics", Tier::RoleHolder),
    ("can_share_filters", Tier::RoleHolder),
    ("can_use_api", Tier::Everyone),
    ("can_use_email_tracking", Tier::Everyone),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Tier {
    Everyone,
    RoleHolder,
    Admin,
}

pub(super) fn permissions(user: &User) -> Value {
    let tier = if user.is_admin() {
        Tier::Admin
    } else if user.role.is_some() {
        Tier::RoleHolder
    } else {
        Tier::Everyone
    };
    let map: Map<String, Value> =
        PERMISSIONS.iter().map(|(name, needed)| ((*name).to_owned(), Value::Bool(tier >= *needed))).collect();
    Value::Object(map)
}

/// `access[]` of a request (addUser) or a seed: objects with `app` (required, one of [`APPS`]),
/// optional `admin` (boolean) and `permission_set_id` (string), nothing else.
pub(super) fn parse_access(v: &Value) -> Result<Vec<Access>, ApiError> {
    let Value::Array(items) = v else {
        return Err(ApiError::bad_request("access must be an array"));
    };
    let mut out: Vec<Access> = Vec::new();
    for item in items {
        let Value::Object(obj) = item else {
            return Err(ApiError::bad_request("access items must be objects"));
        };
        let f = Fields(obj);
        f.only(&["app", "admin", "permission_set_id"])?;
        let app = f.string("app")?.ok_or_else(|| ApiError::bad_request("access[].app is required"))?;
        if !APPS.contains(&app.as_str()) {
            return Err(ApiError::bad_request(format!("access[].app must be one of {}", APPS.join(", "))));
        }
        if out.iter().any(|a| a.app == app) {
            return Err(ApiError::bad_request(format!("access names the app {app} twice")));
        }
        let admin = f.bool("admin")?.unwrap_or(false);
        out.push(Access::new(&app, admin, f.string("permission_set_id")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::ADMIN_USER_ID;
    use super::*;
    use crate::registry::VendorSim;
    use crate::{Config, Fixture};

    #[test]
    fn permissions_follow_admin_then_role() {
        let s = State::new(&Config::default(), Fixture::Default);
        let admin = &s.users[&ADMIN_USER_ID];
        assert_eq!(permissions(admin)["can_modify_labels"], true);
        let mut nobody = admin.clone();
        nobody.access = Access::default_for_new_user();
        assert_eq!(permissions(&nobody)["can_see_other_users"], false);
        assert_eq!(permissions(&nobody)["can_use_api"], true);
        nobody.role = Some(Holding { assignment_id: 1, role_id: 1 });
        assert_eq!(permissions(&nobody)["can_see_other_users"], true);
    }
}
