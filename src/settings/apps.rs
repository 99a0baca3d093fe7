//! The apps and their callback tokens: where they come from (the file, then
//! `TIM_BRIDGE_SDKAPPID` and `TIM_BRIDGE_TOKEN`) and what is refused. An app without a
//! token takes unsigned callbacks, so that only happens when `allow_unsigned` says so.

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// Shortest token taken: a random 16 bytes is out of reach of guessing.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The token `serve --dev` prints; refused anywhere else.
pub const DEV_TOKEN: &str = "dev-token";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub sdk_app_id: u64,
    /// Callback authentication tokens; two during a rotation. None: unsigned requests
    /// are taken, which needs `allow_unsigned = true`.
    #[serde(default)]
    pub tokens: Vec<Secret>,
    /// Tencent's REST API, for `reconcile`: an App admin account of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// The app's secret key (the IM console's 密钥), which UserSigs are made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
    /// Where the app's data is kept, which names the REST API's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// The REST API's base URL instead of the region's (a private gateway, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    /// A private CA for `rest_url` (a gateway), trusted instead of the public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_ca_file: Option<std::path::PathBuf>,
}

/// The regions Tencent's REST pages list, each with its domain
/// (../shared/tencent-rest.md §1, cloud.tencent.com/document/product/269/1519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    China,
    Singapore,
    Seoul,
    Frankfurt,
    SiliconValley,
    Jakarta,
    Tokyo,
    Mumbai,
}

impl Region {
    pub fn base_url(self) -> &'static str {
        match self {
            Region::China => "https://console.tim.qq.com",
            Region::Singapore => "https://adminapisgp.im.qcloud.com",
            Region::Seoul => "https://adminapikr.im.qcloud.com",
            Region::Frankfurt => "https://adminapiger.im.qcloud.com",
            Region::SiliconValley => "https://adminapiusa.im.qcloud.com",
            Region::Jakarta => "https://adminapiidn.im.qcloud.com",
            Region::Tokyo => "https://adminapijpn.im.qcloud.com",
            Region::Mumbai => "https://adminapiind.im.qcloud.com",
        }
    }
}

impl App {
    /// The REST API's base URL: `rest_url`, else the region's, else China's.
    pub fn rest_base(&self) -> &str {
        self.rest_url
            .as_deref()
            .unwrap_or_else(|| self.region.unwrap_or(Region::China).base_url())
    }
}

/// `TIM_BRIDGE_SDKAPPID` over the file's `[[apps]]`: the apps it names keep the
/// tokens the file gives them; an app of the file it does not name is an error, so
/// that the two never disagree silently.
pub(super) fn apps_from_env(value: &str, from_file: &[App]) -> Result<Vec<App>, SettingsError> {
    let ids = value
        .split(',')
        .map(|id| {
            let id = id.trim();
            id.parse::<u64>().map_err(|_| {
                SettingsError::new(
                    "TIM_BRIDGE_SDKAPPID",
                    format!("`{}` is not an SDKAppID (a number)", printable(id, 32)),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(missing) = from_file.iter().find(|app| !ids.contains(&app.sdk_app_id)) {
        return Err(SettingsError::new(
            "TIM_BRIDGE_SDKAPPID",
            format!(
                "does not name app {} of the config file's [[apps]]: list the apps in one place, \
                 TIM_BRIDGE_SDKAPPID or [[apps]] (the file's tokens are kept for the apps both name)",
                missing.sdk_app_id
            ),
        ));
    }
    Ok(ids
        .into_iter()
        .map(|sdk_app_id| {
            from_file
                .iter()
                .find(|app| app.sdk_app_id == sdk_app_id)
                .cloned()
                .unwrap_or(App {
                    sdk_app_id,
                    ..App::default()
                })
        })
        .collect())
}

/// `TIM_BRIDGE_TOKEN`: one token, or two separated by a comma while rotating. Set but
/// blank is an error, not "no token".
pub(super) fn tokens_from_env(value: &str) -> Result<Vec<Secret>, SettingsError> {
    if value.trim().is_empty() {
        return Err(SettingsError::new(
            "TIM_BRIDGE_TOKEN",
            "is set but blank: set the callback token of the IM console (two, comma-separated, while rotating) or unset the variable",
        ));
    }
    Ok(value.split(',').map(|t| Secret::new(t.trim())).collect())
}

/// Every app has one or two acceptable tokens, or unsigned callbacks were asked for.
pub(super) fn check(apps: &[App], allow_unsigned: bool, dev: bool) -> Result<(), SettingsError> {
    if apps.is_empty() {
        return Err(SettingsError::new(
            "apps",
            "no app configured: set TIM_BRIDGE_SDKAPPID or [[apps]] in the config file",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for app in apps {
        let setting = format!("apps[{}].tokens", app.sdk_app_id);
        if !seen.insert(app.sdk_app_id) {
            return Err(SettingsError::new(
                "apps",
                format!("SDKAppID {} is listed twice", app.sdk_app_id),
            ));
        }
        if app.tokens.is_empty() && !allow_unsigned {
            return Err(SettingsError::new(
                setting,
                "no token, so anyone could send this app's callbacks unsigned: set TIM_BRIDGE_TOKEN \
                 (or tokens in [[apps]]) to the callback token of the IM console, or set \
                 allow_unsigned = true to take unsigned callbacks on purpose",
            ));
        }
        if app.tokens.len() > 2 {
            return Err(SettingsError::new(
                setting,
                "at most two tokens (the current one and the next, while rotating)",
            ));
        }
        for token in &app.tokens {
            check_token(token.expose(), dev)
                .map_err(|problem| SettingsError::new(&setting, problem.to_string()))?;
        }
        check_rest(app)?;
    }
    Ok(())
}

/// The REST settings `reconcile` uses: checked wherever the settings are, so that
/// `check-config` finds them wrong before the first hourly run does.
fn check_rest(app: &App) -> Result<(), SettingsError> {
    let at = |name: &str| format!("apps[{}].{name}", app.sdk_app_id);
    match (&app.admin, &app.secret_key) {
        (Some(_), None) => {
            return Err(SettingsError::new(
                at("secret_key"),
                "is needed with `admin` (or TIM_BRIDGE_SECRET_KEY): UserSigs are made with it",
            ))
        }
        (None, Some(_)) => {
            return Err(SettingsError::new(
                at("admin"),
                "is needed with `secret_key` (or TIM_BRIDGE_REST_ADMIN): an App admin account of the app",
            ))
        }
        (Some(admin), _) if admin.is_empty() => {
            return Err(SettingsError::new(at("admin"), "is empty"))
        }
        _ => {}
    }
    if let Some(key) = &app.secret_key {
        if key.expose().is_empty() {
            return Err(SettingsError::new(at("secret_key"), "is empty"));
        }
        if key.expose().starts_with("replace-with-") {
            return Err(SettingsError::new(
                at("secret_key"),
                "is the example's placeholder: set the app's secret key from the IM console",
            ));
        }
    }
    if let Some(url) = &app.rest_url {
        if app.region.is_some() {
            return Err(SettingsError::new(
                at("rest_url"),
                "and `region` both name the REST API: keep one",
            ));
        }
        let uri: hyper::Uri = url.parse().map_err(|e| {
            SettingsError::new(at("rest_url"), format!("`{url}` is not a URL: {e}"))
        })?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(SettingsError::new(
                at("rest_url"),
                format!("`{url}` must be an https:// URL: the UserSig travels in it"),
            ));
        }
    }
    if let Some(path) = &app.rest_ca_file {
        std::fs::metadata(path).map_err(|e| {
            SettingsError::new(
                at("rest_ca_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
    }
    Ok(())
}

/// What is wrong with a token, for the [`SettingsError`] that names its app.
#[derive(Debug, PartialEq, Eq)]
enum TokenProblem {
    Empty,
    Placeholder,
    DevToken,
    Short(usize),
}

impl std::fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("a token is empty"),
            Self::Placeholder => f.write_str(
                "is the example's placeholder: set the callback token of the IM console",
            ),
            Self::DevToken => write!(
                f,
                "is `{DEV_TOKEN}`, the token of `serve --dev`, known to everyone: set the callback token of the IM console"
            ),
            Self::Short(bytes) => write!(
                f,
                "is {bytes} bytes; use at least {MIN_TOKEN_BYTES} (e.g. `openssl rand -hex 16`), here and in the IM console"
            ),
        }
    }
}

fn check_token(token: &str, dev: bool) -> Result<(), TokenProblem> {
    if token.is_empty() {
        return Err(TokenProblem::Empty);
    }
    if token.starts_with("replace-with-") {
        return Err(TokenProblem::Placeholder);
    }
    if token == DEV_TOKEN && !dev {
        return Err(TokenProblem::DevToken);
    }
    if token.len() < MIN_TOKEN_BYTES && token != DEV_TOKEN {
        return Err(TokenProblem::Short(token.len()));
    }
    Ok(())
}

/// What start-up should warn about: apps taking unsigned callbacks, and apps sharing a
/// token (Tencent's signature does not cover `SdkAppid`, so a request signed for one
/// passes for the other).
pub(super) fn warnings(apps: &[App]) -> Vec<String> {
    let mut warnings = Vec::new();
    let unsigned: Vec<_> = apps
        .iter()
        .filter(|app| app.tokens.is_empty())
        .map(|app| app.sdk_app_id.to_string())
        .collect();
    if !unsigned.is_empty() {
        warnings.push(format!(
            "allow_unsigned: app {} takes callbacks without a signature; anyone who reaches the port can send them",
            unsigned.join(", ")
        ));
    }
    for (i, a) in apps.iter().enumerate() {
        for b in &apps[i + 1..] {
            if a.tokens.iter().any(|t| b.tokens.contains(t)) {
                warnings.push(format!(
                    "apps {} and {} share a token: Tencent's signature does not cover SdkAppid, so a callback \
                     signed for one is taken for the other; give each app its own token",
                    a.sdk_app_id, b.sdk_app_id
                ));
            }
        }
    }
    warnings
}

/// A caller- or user-supplied string made safe for a log line or an error: control
/// characters escaped, at most `max` characters.
pub fn printable(value: &str, max: usize) -> String {
    let mut out: String = value
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if value.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: u64, tokens: &[&str]) -> App {
        App {
            sdk_app_id: id,
            tokens: tokens.iter().map(|t| Secret::new(*t)).collect(),
            ..App::default()
        }
    }

    const GOOD: &str = "0123456789abcdef0123";

    #[test]
    fn an_app_without_a_token_is_refused_unless_unsigned_is_allowed() {
        let apps = [app(1, &[])];
        let err = check(&apps, false, false).unwrap_err();
        assert_eq!(err.setting, "apps[1].tokens");
        assert!(err.reason.contains("allow_unsigned"), "{err}");
        check(&apps, true, false).unwrap();
        assert_eq!(warnings(&apps).len(), 1);
    }

    #[test]
    fn placeholders_the_dev_token_and_short_tokens_are_refused() {
        for (token, why) in [
            ("replace-with-your-callback-token", "placeholder"),
            ("dev-token", "serve --dev"),
            ("fifteen-bytes!!", "15 bytes"),
            ("", "empty"),
        ] {
            let err = check(&[app(1, &[token])], false, false).unwrap_err();
            assert!(err.reason.contains(why), "{token}: {err}");
        }
        check(&[app(1, &["dev-token"])], false, true).unwrap();
        check(&[app(1, &[GOOD])], false, false).unwrap();
    }

    #[test]
    fn the_app_id_variable_keeps_the_file_tokens_of_the_apps_it_names() {
        let file = [app(1, &[GOOD, "another-token-of-app-1"])];
        let apps = apps_from_env("1, 2", &file).unwrap();
        assert_eq!(apps[0].tokens.len(), 2);
        assert!(apps[1].tokens.is_empty());
        let err = apps_from_env("2", &file).unwrap_err();
        assert!(err.reason.contains("app 1 of the config file"), "{err}");
    }

    #[test]
    fn a_blank_token_variable_is_an_error_and_a_comma_gives_two_tokens() {
        assert_eq!(
            tokens_from_env("  ").unwrap_err().setting,
            "TIM_BRIDGE_TOKEN"
        );
        assert_eq!(tokens_from_env("a, b").unwrap().len(), 2);
    }

    #[test]
    fn apps_sharing_a_token_are_warned_about() {
        let warnings = warnings(&[app(1, &[GOOD]), app(2, &[GOOD])]);
        assert!(warnings[0].contains("share a token"), "{warnings:?}");
    }

    #[test]
    fn printable_escapes_control_characters_and_truncates() {
        assert_eq!(
            printable("a\r\nERROR x\u{1b}[31m", 64),
            "a\\r\\nERROR x\\u{1b}[31m"
        );
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
