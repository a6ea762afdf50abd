//! The media section: which inspector identifies and measures uploads.

use std::sync::Arc;

use roughy_app::ports::MediaInspector;

use super::env::Env;
use super::ConfigError;

/// `ROUGHY_MEDIA_PROBE`'s choices.
const PROBES: [&str; 2] = ["symphonia", "ffprobe"];

/// The media inspector.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// `ROUGHY_MEDIA_PROBE` (symphonia): `symphonia` (pure Rust) or `ffprobe` (the FFmpeg
    /// program, run as a subprocess).
    pub probe: String,
}

impl MediaConfig {
    /// Reads and checks the section.
    ///
    /// # Errors
    /// A `ConfigError` naming the first bad variable.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let probe = env.parse("ROUGHY_MEDIA_PROBE", PROBES[0], |v| {
            if PROBES.contains(&v) {
                Ok(v.to_owned())
            } else {
                Err("must be symphonia or ffprobe".to_owned())
            }
        })?;
        Ok(Self { probe })
    }

    /// The configured inspector.
    ///
    /// # Errors
    /// A `ConfigError` when the name is not one the media crate knows (only a hand-built
    /// section can get here).
    pub fn inspector(&self) -> Result<Arc<dyn MediaInspector>, ConfigError> {
        roughy_media::inspector_from_name(&self.probe)
            .ok_or_else(|| ConfigError::new("ROUGHY_MEDIA_PROBE", "must be symphonia or ffprobe"))
    }
}
