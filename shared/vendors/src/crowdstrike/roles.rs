//! Falcon's roles as the client reads and changes them: the tenant's role ids, a user's
//! direct grants, and the grant and revoke actions, which must name the tenant's CID (learnt
//! from the answers the client already gets).

use super::client::{too_many_pages, Client, MAX_PAGES, PAGE};
use super::wire::{Envelope, Error, Grant};
use crate::http::HttpError;
use lifecycle_domain::VendorKind;
use reqwest::Method;
use serde_json::{json, Value};

const VENDOR: VendorKind = VendorKind::Crowdstrike;

impl Client {
    /// Every role id of the tenant (case-sensitive strings): queriesRolesV1
    /// `GET /user-management/queries/roles/v1`.
    pub async fn role_ids(&self) -> Result<Vec<String>, Error> {
        let env: Envelope<String> = self.call(Method::GET, "/user-management/queries/roles/v1", |rb| rb).await?;
        Ok(env.resources.unwrap_or_default())
    }

    /// The role ids granted to the user directly; `None` when the user does not exist:
    /// CombinedUserRolesV2 `GET /user-management/combined/user-roles/v2?user_uuid=
    /// &direct_only=true&offset=&limit=500` (one request unless a user holds more than 500).
    /// Direct grants only: they are what userRolesActionV1 grants and revokes; a role held
    /// through a user group or a parent CID is not ours to converge.
    pub async fn user_roles(&self, uuid: &str) -> Result<Option<Vec<String>>, Error> {
        let mut roles: Vec<String> = Vec::new();
        for _ in 0..MAX_PAGES {
            let offset = roles.len();
            let env: Envelope<Grant> = match self
                .call(Method::GET, "/user-management/combined/user-roles/v2", |rb| {
                    rb.query(&[
                        ("user_uuid", uuid.to_string()),
                        ("direct_only", "true".to_string()),
                        ("offset", offset.to_string()),
                        ("limit", PAGE.to_string()),
                    ])
                })
                .await
            {
                Ok(env) => env,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            let grants = env.resources.unwrap_or_default();
            let got = grants.len();
            if let Some(cid) = grants.iter().find_map(|g| g.cid.clone()) {
                self.learn_cid(cid);
            }
            roles.extend(grants.into_iter().map(|g| g.role_id));
            let total = env.meta.pagination.and_then(|p| p.total);
            let last = match total {
                Some(total) => roles.len() as u64 >= total || got == 0,
                None => got < PAGE,
            };
            if last {
                roles.sort();
                roles.dedup();
                return Ok(Some(roles));
            }
        }
        Err(too_many_pages())
    }

    /// Grants roles: userRolesActionV1 `POST /user-management/entities/user-role-actions/v1`
    /// `{"action": "grant", "cid", "role_ids", "uuid"}`. A grant of a role already held changes
    /// nothing.
    pub async fn grant_roles(&self, uuid: &str, roles: &[String]) -> Result<(), Error> {
        self.role_action("grant", uuid, roles).await
    }

    /// Revokes one role (see [`Client::revoke_roles`]).
    pub async fn revoke_role(&self, uuid: &str, role: &str) -> Result<(), Error> {
        self.revoke_roles(uuid, &[role.to_string()]).await
    }

    /// Revokes several roles in one request: userRolesActionV1 with `"action": "revoke"`. All
    /// or nothing: one role the user does not hold refuses the whole request (400), and none
    /// is revoked.
    pub async fn revoke_roles(&self, uuid: &str, roles: &[String]) -> Result<(), Error> {
        self.role_action("revoke", uuid, roles).await
    }

    /// "CID, RoleID(s), User UUID and Action are required": the CID is the tenant's, learned
    /// from earlier answers (or read from the user, once per worker, when none has shown it).
    async fn role_action(&self, action: &str, uuid: &str, roles: &[String]) -> Result<(), Error> {
        let cid = self.cid_for(uuid).await?;
        let body = json!({ "action": action, "cid": cid, "role_ids": roles, "uuid": uuid });
        self.call::<Value>(Method::POST, "/user-management/entities/user-role-actions/v1", |rb| rb.json(&body))
            .await
            .map(drop)
    }

    /// The tenant's CID: the one answers have shown, else the user's own (retrieveUsersGETV1).
    /// A user that does not exist is a not-found error, like the action itself would be.
    async fn cid_for(&self, uuid: &str) -> Result<String, Error> {
        if let Some(cid) = self.known_cid() {
            return Ok(cid);
        }
        let Some(user) = self.get_user(uuid).await? else {
            return Err(Error::Http(HttpError::NotFound { vendor: VENDOR, message: format!("user {uuid} not found") }));
        };
        user.cid.filter(|c| !c.is_empty()).ok_or_else(|| {
            Error::Http(HttpError::Decode {
                vendor: VENDOR,
                message: format!("user {uuid} came without the cid a role action must name"),
            })
        })
    }

    fn known_cid(&self) -> Option<String> {
        self.cid.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn learn_cid(&self, cid: String) {
        if !cid.is_empty() {
            *self.cid.lock().unwrap_or_else(|e| e.into_inner()) = Some(cid);
        }
    }
}
