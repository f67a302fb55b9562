//! Model naming (`provider/model`) and provider credentials.
//!
//! A model string names its provider: `openai/gpt-4o-mini`,
//! `anthropic/claude-sonnet-4-5`, `gemini/gemini-2.5-flash`,
//! `openrouter/meta-llama/llama-3.1-8b-instruct`, `ollama/llama3.2`, or
//! `kiln/offline`. Bare names are routed by their family (`gpt-*`, `o1*`,
//! `o3*`, `o4*` → OpenAI; `claude-*` → Anthropic; `gemini-*` → Gemini).
//! Credentials come from the project's designated vault first
//! (`openai_api_key`, `openai_base_url`, `anthropic_api_key`,
//! `gemini_api_key`, `openrouter_api_key`, `ollama_base_url`), then from the
//! server's environment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::LlmProvider;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
    OpenRouter,
    Ollama,
    Offline,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::OpenRouter,
        ProviderKind::Ollama,
        ProviderKind::Offline,
    ];

    /// Speaks OpenAI's wire format, so takes its extra request fields
    /// (`response_format`, `n`, ...).
    pub fn is_openai_compatible(self) -> bool {
        matches!(
            self,
            ProviderKind::OpenAi | ProviderKind::OpenRouter | ProviderKind::Ollama
        )
    }

    /// The prefix in `provider/model`.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Offline => "kiln",
        }
    }

    fn from_name(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The vault secret (and lower-cased env setting) holding the API key.
    pub fn api_key_setting(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("openai_api_key"),
            ProviderKind::Anthropic => Some("anthropic_api_key"),
            ProviderKind::Gemini => Some("gemini_api_key"),
            ProviderKind::OpenRouter => Some("openrouter_api_key"),
            ProviderKind::Ollama | ProviderKind::Offline => None,
        }
    }

    /// The vault secret (and env setting) overriding the base URL.
    pub fn base_url_setting(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("openai_base_url"),
            ProviderKind::Anthropic => Some("anthropic_base_url"),
            ProviderKind::Gemini => Some("gemini_base_url"),
            ProviderKind::OpenRouter => Some("openrouter_base_url"),
            ProviderKind::Ollama => Some("ollama_base_url"),
            ProviderKind::Offline => None,
        }
    }

    /// The model used when a project names none and this is the first
    /// configured provider.
    pub fn default_model(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "gpt-4o-mini",
            ProviderKind::Anthropic => "claude-3-5-haiku-latest",
            ProviderKind::Gemini => "gemini-2.5-flash",
            ProviderKind::OpenRouter => "openai/gpt-4o-mini",
            ProviderKind::Ollama => "llama3.2",
            ProviderKind::Offline => "offline",
        }
    }

    /// Whether these settings make the provider usable.
    pub fn is_configured(self, settings: &ProviderSettings) -> bool {
        match self {
            ProviderKind::Offline => true,
            ProviderKind::Ollama => settings.base_url.is_some(),
            // A custom base URL (vLLM, llama.cpp, LiteLLM) may need no key.
            ProviderKind::OpenAi => settings.api_key.is_some() || settings.base_url.is_some(),
            _ => settings.api_key.is_some(),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed model string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub provider: ProviderKind,
    /// The model as the provider knows it (any text for OpenAI-compatible
    /// servers: it passes through).
    pub model: String,
}

/// The offline model's full name.
pub const OFFLINE_MODEL: &str = "kiln/offline";

impl ModelRef {
    pub fn parse(model: &str) -> Option<ModelRef> {
        let model = model.trim();
        if let Some((prefix, rest)) = model.split_once('/')
            && let Some(provider) = ProviderKind::from_name(prefix)
            && !rest.is_empty()
        {
            return Some(ModelRef {
                provider,
                model: rest.to_owned(),
            });
        }
        let provider = if model.starts_with("gpt-")
            || model.starts_with("chatgpt-")
            || ["o1", "o3", "o4"]
                .iter()
                .any(|p| model == *p || model.starts_with(&format!("{p}-")))
        {
            ProviderKind::OpenAi
        } else if model.starts_with("claude-") {
            ProviderKind::Anthropic
        } else if model.starts_with("gemini-") {
            ProviderKind::Gemini
        } else {
            return None;
        };
        Some(ModelRef {
            provider,
            model: model.to_owned(),
        })
    }

    pub fn offline() -> ModelRef {
        ModelRef::parse(OFFLINE_MODEL).expect("the offline model name parses")
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider.name(), self.model)
    }
}

/// Resolved settings for one provider. `Debug` never prints the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    /// True when these came from a project's vault (the tenant chose the
    /// base URL, so outbound requests are guarded against private networks).
    pub from_vault: bool,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("from_vault", &self.from_vault)
            .finish()
    }
}

/// The web search engine's settings (`web_search()` in the sandbox): a
/// Brave Search API key (and, for a Brave-compatible server, its base URL),
/// or a SearXNG instance's base URL.
pub const BRAVE_API_KEY_SETTING: &str = "brave_api_key";
pub const BRAVE_BASE_URL_SETTING: &str = "brave_base_url";
pub const SEARXNG_BASE_URL_SETTING: &str = "searxng_base_url";
pub const WEB_SEARCH_SETTINGS: [&str; 3] = [
    BRAVE_API_KEY_SETTING,
    BRAVE_BASE_URL_SETTING,
    SEARXNG_BASE_URL_SETTING,
];

/// Settings by name (`openai_api_key`, `ollama_base_url`, ...): the
/// server's environment, or one project's vault.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SettingMap(BTreeMap<String, String>);

impl fmt::Debug for SettingMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SettingMap {
    pub fn insert(&mut self, name: &str, value: String) {
        if !value.trim().is_empty() {
            self.0.insert(name.to_owned(), value.trim().to_owned());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every setting name Kiln reads from a vault or the environment.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = ProviderKind::ALL
            .into_iter()
            .flat_map(|k| [k.api_key_setting(), k.base_url_setting()])
            .flatten()
            .collect();
        names.push(DEFAULT_MODEL_SETTING);
        names.extend(WEB_SEARCH_SETTINGS);
        names
    }

    /// This provider's settings, taken as a unit: if the project's vault
    /// sets anything for the provider (key or base URL), only the vault's
    /// values are used; otherwise the environment's. So a vault can never
    /// send the server's own key to a base URL of the project's choosing.
    pub fn provider(kind: ProviderKind, vault: &SettingMap, env: &SettingMap) -> ProviderSettings {
        let names = [kind.api_key_setting(), kind.base_url_setting()];
        let vault_sets_any = names.iter().flatten().any(|n| vault.get(n).is_some());
        let source = if vault_sets_any { vault } else { env };
        let pick = |name: Option<&str>| source.get(name?).map(str::to_owned);
        ProviderSettings {
            api_key: pick(kind.api_key_setting()),
            base_url: pick(kind.base_url_setting()),
            from_vault: vault_sets_any,
        }
    }
}

/// The setting naming a project's (vault) or the server's (env) default model.
pub const DEFAULT_MODEL_SETTING: &str = "default_model";

/// Builds provider clients for given settings; `kiln-providers` implements it.
pub trait ProviderFactory: Send + Sync {
    fn build(&self, kind: ProviderKind, settings: &ProviderSettings) -> Arc<dyn LlmProvider>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_strings_name_their_provider() {
        let cases = [
            ("openai/gpt-4o", ProviderKind::OpenAi, "gpt-4o"),
            ("gpt-4o-mini", ProviderKind::OpenAi, "gpt-4o-mini"),
            ("o3-mini", ProviderKind::OpenAi, "o3-mini"),
            ("claude-sonnet-4-5", ProviderKind::Anthropic, "claude-sonnet-4-5"),
            ("gemini-2.5-flash", ProviderKind::Gemini, "gemini-2.5-flash"),
            (
                "openrouter/meta-llama/llama-3.1-8b",
                ProviderKind::OpenRouter,
                "meta-llama/llama-3.1-8b",
            ),
            ("openai/my-local-qwen", ProviderKind::OpenAi, "my-local-qwen"),
            ("kiln/offline", ProviderKind::Offline, "offline"),
        ];
        for (input, provider, model) in cases {
            let parsed = ModelRef::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(
                (parsed.provider, parsed.model.as_str()),
                (provider, model),
                "{input}"
            );
        }
        for bad in ["llama3", "mystery/model", "openai/", "", "o2"] {
            assert_eq!(ModelRef::parse(bad), None, "{bad}");
        }
        assert_eq!(ModelRef::parse("gpt-4o").unwrap().to_string(), "openai/gpt-4o");
    }

    #[test]
    fn vault_settings_replace_the_environment_as_a_unit() {
        let mut vault = SettingMap::default();
        let mut env = SettingMap::default();
        vault.insert("openai_api_key", "from-vault".into());
        env.insert("openai_api_key", "from-env".into());
        env.insert("openai_base_url", "http://local:8000/v1".into());
        env.insert("anthropic_api_key", "  ".into());
        env.insert("gemini_api_key", "server-gemini-key".into());
        let openai = SettingMap::provider(ProviderKind::OpenAi, &vault, &env);
        assert_eq!(openai.api_key.as_deref(), Some("from-vault"));
        assert_eq!(
            openai.base_url, None,
            "the env base URL does not mix with a vault key"
        );
        // A vault base URL alone never receives the server's key.
        vault.insert("gemini_base_url", "http://attacker.example".into());
        let gemini = SettingMap::provider(ProviderKind::Gemini, &vault, &env);
        assert_eq!(gemini.api_key, None);
        assert_eq!(gemini.base_url.as_deref(), Some("http://attacker.example"));
        let from_env = SettingMap::provider(ProviderKind::OpenAi, &SettingMap::default(), &env);
        assert_eq!(from_env.api_key.as_deref(), Some("from-env"));
        assert_eq!(from_env.base_url.as_deref(), Some("http://local:8000/v1"));
        let anthropic = SettingMap::provider(ProviderKind::Anthropic, &vault, &env);
        assert!(
            !ProviderKind::Anthropic.is_configured(&anthropic),
            "blank values do not count"
        );
        assert!(!format!("{openai:?}").contains("from-vault"));
    }
}
