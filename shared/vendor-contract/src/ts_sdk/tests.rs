//! The SDK's reading, checked on fixtures written as the generator writes, and on the files
//! Pipedrive publishes.

use super::*;
use crate::testing::{ex, soup, specs};

const API: &str = r#"
import { DUMMY_BASE_URL } from '../common';
export const ThingsApiAxiosParamCreator = function (configuration?: Configuration) {
    return {
        /**
         * Returns things.
         * @summary Get all things
         * @param {number} [owner_id] If supplied, only things owned by the user
         * @param {'open' | 'won' | 'lost'} [status] Only this status. Multiple statuses can be included as a comma separated array.
         * @param {string} [ids] Optional comma separated string array of up to 3 entity ids to fetch.
         * @param {Array<number>} [tag_ids] Tags. A maximum of 2 tag IDs can be provided.
         * @param {0 | 1} [exact] Exact match.
         * @param {number} [limit] For pagination. Please note that a maximum value of 500 is allowed.
         * @param {string} term The term
         * @throws {RequiredError}
         */
        getThings: async (owner_id?: number, status?: 'open' | 'won' | 'lost', ids?: string, tag_ids?: Array<number>, exact?: 0 | 1, limit?: number, term: string, ): Promise<RequestArgs> => {
            const localVarPath = `/things`;
            const localVarRequestOptions = { method: 'GET', ...baseOptions };
            if (owner_id !== undefined) {
                localVarQueryParameter['owner_id'] = owner_id;
            }
            if (status !== undefined) {
                localVarQueryParameter['status'] = status;
            }
            if (ids !== undefined) {
                localVarQueryParameter['ids'] = ids;
            }
            if (tag_ids) {
                localVarQueryParameter['tag_ids'] = tag_ids;
            }
            if (exact !== undefined) {
                localVarQueryParameter['exact'] = exact;
            }
            if (limit !== undefined) {
                localVarQueryParameter['limit'] = limit;
            }
            if (term !== undefined) {
                localVarQueryParameter['term'] = term;
            }
        },
        /**
         * @summary Update a thing
         * @param {number} id The ID of the thing
         * @param {UpdateThingRequest} [UpdateThingRequest] 
         * @throws {RequiredError}
         */
        updateThing: async (id: number, UpdateThingRequest?: UpdateThingRequest, ): Promise<RequestArgs> => {
            const localVarPath = `/things/{id}`
                .replace(`{${"id"}}`, encodeURIComponent(String(id)));
            const localVarRequestOptions = { method: 'PATCH', ...baseOptions };
            localVarRequestOptions.data = serializeDataIfNeeded(UpdateThingRequest, localVarRequestOptions, configuration)
        },
        /**
         * @param {AddThingRequest} AddThingRequest 
         */
        addThing: async (AddThingRequest: AddThingRequest, ): Promise<RequestArgs> => {
            const localVarPath = `/things`;
            const localVarRequestOptions = { method: 'POST', ...baseOptions };
            localVarRequestOptions.data = serializeDataIfNeeded(AddThingRequest, localVarRequestOptions, configuration)
        },
        /**
         */
        getMine: async (): Promise<RequestArgs> => {
            const localVarPath = `/things/mine`;
            const localVarRequestOptions = { method: 'GET', ...baseOptions };
        },
    }
};
export const ThingsApiFp = function(configuration?: Configuration) {
    const localVarAxiosParamCreator = ThingsApiAxiosParamCreator(configuration)
    return {
        async getThings(owner_id?: number, status?: 'open' | 'won' | 'lost', ): Promise<(axios?: AxiosInstance, basePath?: string) => Promise<GetThingsResponse>> {
        },
        async updateThing(id: number, UpdateThingRequest?: UpdateThingRequest, ): Promise<(axios?: AxiosInstance, basePath?: string) => Promise<ThingResponse>> {
        },
    }
};
"#;

const MODELS: &str = r#"
// @ts-ignore
import { Owner } from './owner';
/**
 * @export
 * @interface UpdateThingRequest
 */
export interface UpdateThingRequest {
    /**
    * The title
    * @type {string}
    */
    'title'?: string;
    'owner_id'?: number;
    'probability'?: number | null;
    'label_ids'?: Array<number>;
    'custom_fields'?: { [key: string]: any | undefined; };
    'colour'?: ThingColourConst;
    'owner'?: Owner;
}
export const ThingColourConst = {
    red: 'red',
    blue: 'blue'
} as const;
export type ThingColourConst = typeof ThingColourConst[keyof typeof ThingColourConst];

export interface ThingData {
    'id': number;
    'next_cursor'?: string;
}
export interface ThingResponse extends Base {
    'data'?: ThingData;
}
export interface Base {
    'success': boolean;
}
export type Both = Base & ThingData;
"#;

fn sdk() -> TsSdk {
    TsSdk::from_sources(&[("things-api.ts", API)], &[("models.ts", MODELS)]).unwrap()
}

#[test]
fn operations_and_their_jsdoc_types_and_limits() {
    let s = sdk();
    assert!(
        s.has("GET", "/things")
            && s.has("PATCH", "/things/{id}")
            && s.has("POST", "/things")
            && s.has("GET", "/things/mine")
    );
    let ok = ex(
        "GET",
        "/things",
        &[
            ("term", "a"),
            ("owner_id", "7"),
            ("status", "open,won"),
            ("ids", "1,2,3"),
            ("tag_ids", "1"),
            ("tag_ids", "2"),
            ("exact", "1"),
            ("limit", "500"),
        ],
    );
    assert_eq!(s.check(&ok), Ok("getThings".into()));
    let bad = ex(
        "GET",
        "/things",
        &[
            ("user_id", "7"),
            ("status", "open,all"),
            ("ids", "1,2,3,4"),
            ("tag_ids", "x"),
            ("tag_ids", "2"),
            ("tag_ids", "3"),
            ("exact", "true"),
            ("limit", "501"),
            ("owner_id", "1"),
            ("owner_id", "2"),
        ],
    );
    let e = s.check(&bad).unwrap_err();
    let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(e.len(), 9, "{text:#?}");
    for want in [
        "`user_id` is not a query parameter of getThings (GET /things)",
        "`status`=`all` is not one of",
        "`ids` lists 4 items, more than the 3 getThings allows",
        "`tag_ids` must be a number, got `x`",
        "`tag_ids` is sent 3 times, more than the 2 getThings allows",
        "`exact` must be a number, got `true`",
        "`limit`=501 is above the maximum 500",
        "`owner_id` is sent more than once",
        "the required query parameter `term` of getThings is missing",
    ] {
        assert!(text.iter().any(|m| m.contains(want)), "{want}: {text:#?}");
    }
    assert_eq!(s.check(&ex("GET", "/things/mine", &[])), Ok("getMine".into()), "the most literal template wins");
    assert_eq!(s.check(&ex("PATCH", "/things/x", &[])).unwrap_err()[0].part, Part::PathParam);
    assert!(s.check(&ex("PUT", "/things/1", &[])).unwrap_err()[0].message.contains("no PUT operation"));
    assert_eq!(s.check(&ex("GET", "/nothing", &[])).unwrap_err()[0].part, Part::Operation);
}

#[test]
fn bodies_are_closed_against_their_model_or_refused_without_one() {
    let s = sdk();
    let mut patch = ex("PATCH", "/things/7", &[]);
    patch.response = Some(json!({"success": true}));
    patch.body = Some(
        json!({"owner_id": 8, "probability": null, "label_ids": [1], "custom_fields": {"abc": [1]}, "colour": "red"}),
    );
    assert_eq!(s.check(&patch), Ok("updateThing".into()));
    patch.body = Some(json!({"user_id": 8, "title": null, "colour": "green", "label_ids": ["a"]}));
    let e = s.check(&patch).unwrap_err();
    let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(e.len(), 4, "{text:#?}");
    assert!(text.iter().any(|m| m.contains("`user_id` is not a field of UpdateThingRequest")), "{text:#?}");
    assert!(text.iter().any(|m| m.contains("`title` of UpdateThingRequest may not be null")), "{text:#?}");
    assert!(
        text.iter().any(|m| m.contains("\"green\" is not one of [\"red\",\"blue\"] (ThingColourConst)")),
        "{text:#?}"
    );
    assert!(text.iter().any(|m| m.contains("at /label_ids/0: expected a number, got a string")), "{text:#?}");
    patch.body = Some(json!({"owner": {"id": 1}}));
    assert!(s.check(&patch).unwrap_err()[0].message.contains("Owner is not among the loaded models"));
    patch.body = None;
    assert!(s.check(&patch).is_ok(), "the JSDoc marks the body optional");

    let mut post = ex("POST", "/things", &[]);
    assert!(s.check(&post).unwrap_err()[0].message.contains("requires a body"));
    post.body = Some(json!({"title": "t"}));
    assert!(s.check(&post).unwrap_err()[0].message.contains("its body's model AddThingRequest is not loaded"));
    let mut get = ex("GET", "/things/mine", &[]);
    get.body = Some(json!({}));
    assert!(s.check(&get).unwrap_err()[0].message.contains("takes no body"));
    assert_eq!(
        s.missing_models(),
        BTreeSet::from(["AddThingRequest".into(), "GetThingsResponse".into(), "Owner".into()])
    );
}

#[test]
fn responses_are_checked_when_their_model_is_loaded_or_named() {
    let s = sdk();
    let mut patch = ex("PATCH", "/things/7", &[]);
    patch.response = Some(json!({"success": true, "data": {"id": 7}}));
    assert!(s.check(&patch).is_ok(), "ThingResponse extends Base");
    patch.response = Some(json!({"success": true, "data": {"id": 7, "owner": 1}, "extra": 1}));
    let e = s.check(&patch).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().all(|v| v.part == Part::ResponseBody));
    patch.response = Some(json!({"data": {"id": 7}}));
    assert!(s.check(&patch).unwrap_err()[0].message.contains("required field `success` of Base"));
    patch.status = 404;
    patch.response = Some(json!({"success": false, "error": "not found"}));
    assert!(s.check(&patch).is_ok(), "error answers are not checked");

    // GetThingsResponse is not loaded: only the status says anything.
    let mut get = ex("GET", "/things", &[("term", "a")]);
    get.response = Some(json!({"anything": true}));
    assert!(s.check(&get).is_ok());
    let s = s.with_response_model("getThings", "Both", &[]).unwrap();
    get.response = Some(json!({"success": true, "id": 1, "next_cursor": null}));
    assert!(s.check(&get).unwrap_err()[0].message.contains("`next_cursor` of ThingData may not be null"));
    let s = s.allow_null("ThingData", "next_cursor").unwrap();
    assert_eq!(s.check(&get), Ok("getThings".into()));
    get.response = Some(json!({"success": true, "id": 1, "more": 2}));
    assert!(s.check(&get).unwrap_err()[0].message.contains("`more` is not a field of Base & ThingData"));
    assert_eq!(
        s.clone().allow_null("ThingData", "nope").unwrap_err(),
        SetupError::UnknownField { model: "ThingData".into(), field: "nope".into() }
    );
    assert_eq!(
        s.clone().with_response_model("nope", "Both", &[]).unwrap_err(),
        SetupError::UnknownOperation("nope".into())
    );
    assert_eq!(s.with_response_model("getThings", "Nope", &[]).unwrap_err(), SetupError::UnknownModel("Nope".into()));
}

#[test]
fn odd_sources_do_not_panic() {
    for text in [
        "",
        "export interface",
        "export interface X {",
        "export interface X { 'a'?: Array<",
        "export const X = {",
        "'unterminated",
        "/* open",
        "type X = | ;",
    ] {
        let _ = TsSdk::from_sources(&[("a.ts", API)], &[("m.ts", text)]);
        let _ = TsSdk::from_sources(&[("a.ts", text)], &[]);
    }
    assert!(TsSdk::from_sources(&[("a.ts", "export const x = 1;")], &[]).is_err());
    let twice = TsSdk::from_sources(&[("a.ts", API), ("b.ts", API)], &[]).unwrap_err();
    assert!(twice.to_string().contains("load each API version separately"), "{twice}");
}

/// TypeScript-ish soup: the model and type parsers end on anything.
#[test]
fn token_soup_neither_panics_nor_hangs() {
    let fragments = [
        "export",
        "interface",
        "type",
        "const",
        "enum",
        "X",
        "extends",
        "{",
        "}",
        "<",
        ">",
        "[",
        "]",
        "(",
        ")",
        "|",
        "&",
        ";",
        ",",
        ":",
        "?",
        "=",
        "'a'",
        "1",
        "-",
        "Array",
        "typeof",
        "keyof",
        "as",
        "null",
        "/*",
        "//",
        "\n",
    ];
    for src in soup(&fragments, 0x75, 16, " ") {
        if let Ok(s) = TsSdk::from_sources(&[("a.ts", API)], &[("soup.ts", &src)]) {
            let _ = s.errors("X", &json!({"a": [1, null]}));
        }
        let _ = parse_type_text(&src);
    }
}

#[test]
fn pipedrive_v2_deals_from_the_published_sdk() {
    let dir = specs().join("pipedrive/client-nodejs-32.2.1");
    let v2 = TsSdk::load(
        &[dir.join("src_versions_v2_api_deals-api.ts")],
        &[
            dir.join("src_versions_v2_models_update-deal-request.ts"),
            dir.join("src_versions_v2_models_get-deals-response-all-of.ts"),
            dir.join("src_versions_v2_models_get-activities-response-all-of-additional-data.ts"),
        ],
    )
    .unwrap();
    assert!(v2.has("GET", "/deals") && v2.has("PATCH", "/deals/{id}") && v2.has("GET", "/deals/{id}"));
    assert!(!v2.has("PUT", "/deals/{id}"), "v2 updates with PATCH");
    let list = ex("GET", "/deals", &[("owner_id", "7"), ("status", "open"), ("limit", "500"), ("cursor", "eyJ")]);
    assert_eq!(v2.check(&list), Ok("getDeals".into()));
    let v1_style =
        ex("GET", "/deals", &[("user_id", "7"), ("status", "all_not_deleted"), ("start", "0"), ("limit", "501")]);
    let e = v2.check(&v1_style).unwrap_err();
    let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(e.len(), 4, "{text:#?}");
    assert!(text.iter().any(|m| m.contains("`user_id` is not a query parameter of getDeals")), "{text:#?}");
    assert!(text.iter().any(|m| m.contains("`start` is not a query parameter")), "{text:#?}");
    assert!(text.iter().any(|m| m.contains("maximum 500")), "{text:#?}");

    let mut update = ex("PATCH", "/deals/7", &[]);
    update.body = Some(json!({"owner_id": 8}));
    assert_eq!(v2.check(&update), Ok("updateDeal".into()));
    update.body = Some(json!({"user_id": 8}));
    assert!(v2.check(&update).unwrap_err()[0].message.contains("`user_id` is not a field of UpdateDealRequest"));
    // UpsertDealResponse is not in the copy: the answer's status is all that is checked.
    update.body = Some(json!({"owner_id": 8}));
    update.response = Some(json!({"success": true, "data": {"id": 7, "owner_id": 8}}));
    assert!(v2.check(&update).is_ok());

    let mut page = list.clone();
    page.response =
        Some(json!({"success": true, "data": [{"id": 1, "owner_id": 7}], "additional_data": {"next_cursor": null}}));
    assert!(v2.check(&page).is_ok(), "GetDealsResponse is not in the copy");
    let v2 = v2.with_response_model("getDeals", "GetDealsResponseAllOf", &["success"]).unwrap();
    assert!(v2.check(&page).unwrap_err()[0]
        .message
        .contains("`next_cursor` of GetActivitiesResponseAllOfAdditionalData may not be null"));
    let v2 = v2.allow_null("GetActivitiesResponseAllOfAdditionalData", "next_cursor").unwrap();
    assert!(v2.check(&page).is_ok(), "Deal is not loaded: its items are accepted unseen");
    page.response = Some(json!({"success": true, "data": [], "additional_data": {"pagination": {"next_start": 500}}}));
    assert!(v2.check(&page).unwrap_err()[0]
        .message
        .contains("`pagination` is not a field of GetActivitiesResponseAllOfAdditionalData"));
}

#[test]
fn pipedrive_v1_users_and_roles_from_the_published_sdk() {
    let dir = specs().join("pipedrive/client-nodejs-32.2.1");
    let v1 = TsSdk::load(
        &[dir.join("src_versions_v1_api_users-api.ts"), dir.join("src_versions_v1_api_roles-api.ts")],
        &[dir.join("src_versions_v1_models_base-user.ts"), dir.join("src_versions_v1_models_user-access.ts")],
    )
    .unwrap();
    assert_eq!(v1.check(&ex("GET", "/users/me", &[])), Ok("getCurrentUser".into()));
    assert_eq!(
        v1.check(&ex("GET", "/users/find", &[("term", "ada"), ("search_by_email", "1")])),
        Ok("findUsersByName".into())
    );
    let e = v1.check(&ex("GET", "/users/find", &[("search_by_email", "true")])).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(
        v1.check(&ex("GET", "/users/7/roleAssignments", &[("start", "0"), ("limit", "500")])),
        Ok("getUserRoleAssignments".into())
    );
    let mut add = ex("POST", "/users", &[]);
    add.body = Some(json!({"email": "ada@example.com", "active_flag": true}));
    assert!(v1.check(&add).unwrap_err()[0].message.contains("AddUserRequest is not loaded"));

    let user = json!({"id": 1, "name": "Ada", "email": "ada@example.com", "active_flag": true, "phone": null,
        "access": [{"app": "sales", "admin": true, "permission_set_id": "p"}]});
    assert!(v1.errors("BaseUser", &user).is_empty());
    let mut old = user.clone();
    old["is_admin"] = json!(1);
    old["access"][0]["app"] = json!("crm");
    let e = v1.errors("BaseUser", &old);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().any(|m| m.contains("`is_admin` is not a field of BaseUser")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("/access/0/app") && m.contains("UserAccessAppConst")), "{e:?}");
}
