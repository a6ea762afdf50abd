//! Reading variables: each helper names the variable (and, for a number, its range) when the
//! value is refused, so every section reports bad input the same way.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;

/// The environment a configuration is read from: the process's, or a map in tests. A blank
/// value counts as unset.
pub struct Env<'a> {
    get: Box<Lookup<'a>>,
}

/// Reads one variable.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env(…)")
    }
}

/// A duration variable's allowed range, in seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct SecsRange {
    pub(super) min: u64,
    pub(super) max: u64,
}

/// Seconds in a day, for the ranges.
pub(super) const DAY: u64 = 86_400;

impl<'a> Env<'a> {
    /// An environment read through `get`.
    pub fn new(get: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self { get: Box::new(get) }
    }

    /// The variable's value, `None` when unset or blank.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.trim().is_empty())
    }

    /// The trimmed value (or `default`) through `f`; `f`'s message becomes the refusal.
    pub(super) fn parse<T>(
        &self,
        name: &'static str,
        default: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let raw = self.var(name).unwrap_or_else(|| default.to_owned());
        f(raw.trim()).map_err(|reason| ConfigError::new(name, reason))
    }

    /// A whole number from `min` to `max` (inclusive), `default` when unset. The message names
    /// the range: `must be a whole number of seconds from 1 to 604800`.
    pub(super) fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Result<u64, ConfigError> {
        self.parse(name, &default.to_string(), |v| match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number{unit} from {min} to {max}")),
        })
    }

    /// A bounded number as a `usize` (every bound here fits in 32 bits).
    pub(super) fn usize(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<usize, ConfigError> {
        self.number(name, default, min, max, "")
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// A bounded number as a `u32` (every bound here fits).
    pub(super) fn u32(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u32, ConfigError> {
        self.number(name, default, min, max, "")
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// A duration in whole seconds within `range`.
    pub(super) fn secs(
        &self,
        name: &'static str,
        default: u64,
        range: SecsRange,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range.min, range.max, " seconds")
            .map(Duration::from_secs)
    }

    /// `0`/`false` or `1`/`true`.
    pub(super) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, if default { "1" } else { "0" }, |v| match v {
            "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err("must be 0 or 1".to_owned()),
        })
    }

    /// A secret variable, trimmed, of at least `min_len` bytes (printable ASCII only when
    /// `printable`: it must be presentable in an `Authorization` header); `None` when unset.
    pub(super) fn secret(
        &self,
        name: &'static str,
        min_len: usize,
        printable: bool,
    ) -> Result<Option<SecretString>, ConfigError> {
        let Some(raw) = self.var(name) else {
            return Ok(None);
        };
        let value = raw.trim();
        // Never echo the value: it is a secret.
        if value.len() < min_len {
            return Err(ConfigError::new(
                name,
                format!(
                    "must be at least {min_len} bytes once trimmed (got {})",
                    value.len()
                ),
            ));
        }
        if printable && !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(ConfigError::new(
                name,
                format!(
                    "must be at least {min_len} bytes of printable ASCII (no control or \
                     non-ASCII characters)"
                ),
            ));
        }
        Ok(Some(SecretString::from(value.to_owned())))
    }
}
