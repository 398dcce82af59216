//! The OpenAPI 3.1 document of the admin API (`/api/v1`) and the token endpoint (`/auth`),
//! generated from the wire types in [`crate::api`] and the `#[utoipa::path]` of each handler,
//! so it cannot drift from the code. Served at `GET /api/v1/openapi.json`, printed by
//! `regauth openapi`, and committed as `docs/openapi.json` (a test compares the two).
//!
//! The document is public: it describes shapes, not data, and is the same file a clone of the
//! repository has. Everything it describes still needs its credentials.
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use super::{activity, admin, admins, auth, keys};
use crate::api;

/// Adds the two security schemes the operations refer to.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "The admin token: `[admin] token` of the config file, `REGAUTH_ADMIN_TOKEN`, or the \
             file `<data_dir>/admin-token` written at first start."
                .into(),
        );
        components.add_security_scheme("adminToken", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("A token's name and password, as `docker login` sends them.".into());
        components.add_security_scheme("tokenCredentials", SecurityScheme::Http(basic));
        let mut events = Http::new(HttpAuthScheme::Bearer);
        events.description = Some(
            "A registry's events secret (`<data_dir>/events/<registryId>.secret`), as its \
             `notifications:` block from `regauth registry-config` sends it. Not the admin token."
                .into(),
        );
        components.add_security_scheme("eventsSecret", SecurityScheme::Http(events));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "regauth",
        description = "Token authentication for Docker/OCI registries.\n\n\
            The admin API under `/api/v1` manages a registry's access tokens. Its shapes follow \
            the IONOS Cloud Container Registry token API, so IONOS SDKs work against it. Every \
            error is `{\"httpStatus\", \"messages\": [{\"errorCode\", \"message\"}]}`; a known \
            path asked with a method it does not have answers 405, an unknown path 404, both \
            with that body. Bodies over 64 KiB answer 413.\n\n\
            The token endpoint `/auth` (also at `/auth/token`) is the `realm` a registry sends \
            docker to: `GET` with Basic credentials, or an OAuth2 `POST` form. Its errors are the \
            registry protocol's `{\"errors\": [{\"code\", \"message\"}]}`.\n\n\
            See docs/admin-api.md and docs/token-endpoint.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        admin::list_registries,
        admin::get_registry,
        admin::list_tokens,
        admin::create_token,
        admin::get_token,
        admin::put_token,
        admin::patch_token,
        admin::delete_token,
        admin::rotate_credentials,
        admin::check_federation,
        admin::disable_by_owner,
        activity::registry_activity,
        activity::token_activity,
        activity::receive,
        admins::me,
        admins::list,
        admins::create,
        admins::rotate,
        admins::delete,
        auth::get_token,
        auth::post_token,
        keys::list_keys,
        keys::create_key,
        keys::get_key,
        keys::check_key,
        keys::activate_key,
        keys::delete_key,
    ),
    components(schemas(api::ErrorBody, api::RegistryErrors)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "registries", description = "The registries regauth issues tokens for (from the config file)."),
        (name = "tokens", description = "A registry's access tokens."),
        (name = "admins", description = "Named admins with roles (viewer, editor, owner); managing them needs the owner role."),
        (name = "token endpoint", description = "Where docker and other clients get a registry token."),
        (name = "activity", description = "What the registries report: manifests pushed, pulled and deleted, by token (docs/activity.md)."),
        (name = "keys", description = "The signing keys and their rotation (docs/key-rotation.md)."),
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: the content of `docs/openapi.json`.
pub fn json() -> String {
    let mut text = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize the document: {e}\"}}"));
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}
