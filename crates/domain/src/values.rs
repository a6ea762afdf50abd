//! Values parsed at the edge: once built, they are valid.

use std::fmt;

use thiserror::Error;

/// Why a value was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The declared size is below the minimum upload size.
    #[error("size_bytes must be at least {min} bytes")]
    SizeTooSmall {
        /// The minimum.
        min: u64,
    },
    /// The declared size is above the maximum upload size.
    #[error("size_bytes must be at most {max} bytes (50 GiB)")]
    SizeTooLarge {
        /// The maximum.
        max: u64,
    },
    /// Not a two-letter ISO 639-1 code.
    #[error("language must be a 2-letter ISO 639-1 code")]
    Language,
    /// Project name empty, longer than 200 characters, or holding U+0000 (which PostgreSQL
    /// text cannot store).
    #[error("name must be 1 to 200 characters, without U+0000")]
    ProjectName,
}

/// A declared upload size: 64 bytes to 50 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SizeBytes(u64);

impl SizeBytes {
    /// The smallest upload: the first chunk must carry this many bytes for sniffing.
    pub const MIN: u64 = 64;
    /// The largest upload: 50 GiB (`Tus-Max-Size`).
    pub const MAX: u64 = 50 * 1024 * 1024 * 1024;

    /// Parses a declared size.
    ///
    /// # Errors
    /// `SizeTooSmall` below [`Self::MIN`], `SizeTooLarge` above [`Self::MAX`].
    pub fn new(bytes: u64) -> Result<Self, ValueError> {
        if bytes < Self::MIN {
            Err(ValueError::SizeTooSmall { min: Self::MIN })
        } else if bytes > Self::MAX {
            Err(ValueError::SizeTooLarge { max: Self::MAX })
        } else {
            Ok(Self(bytes))
        }
    }

    /// The size in bytes.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// An ISO 639-1 language hint, lowercased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Language(String);

impl Language {
    /// Parses `"DE"` into `de`.
    ///
    /// # Errors
    /// `ValueError::Language` unless exactly two ASCII letters.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        if raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(ValueError::Language)
        }
    }

    /// The lowercase code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A project's display name: 1 to 200 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectName(String);

impl ProjectName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name.
    ///
    /// # Errors
    /// `ValueError::ProjectName` when empty, longer than 200 characters, or holding U+0000.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let chars = raw.chars().count();
        if (1..=Self::MAX_CHARS).contains(&chars) && !raw.contains('\0') {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ValueError::ProjectName)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A measured duration in whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationMs(u64);

impl DurationMs {
    /// Wraps milliseconds.
    pub fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Rounds seconds to the nearest millisecond (negative and NaN become 0).
    pub fn from_secs_f64(secs: f64) -> Self {
        if secs.is_finite() && secs > 0.0 {
            Self((secs * 1000.0).round() as u64)
        } else {
            Self(0)
        }
    }

    /// The milliseconds.
    pub fn millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DurationMs {
    /// The contract's decimal string with exactly three fraction digits: `"250.480"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn size_bounds_are_inclusive() {
        assert_eq!(
            SizeBytes::new(63),
            Err(ValueError::SizeTooSmall { min: 64 })
        );
        assert!(SizeBytes::new(64).is_ok());
        assert!(SizeBytes::new(SizeBytes::MAX).is_ok());
        assert!(matches!(
            SizeBytes::new(SizeBytes::MAX + 1),
            Err(ValueError::SizeTooLarge { .. })
        ));
        assert_eq!(SizeBytes::MAX, 53_687_091_200);
    }

    #[test]
    fn language_is_normalised_to_lowercase() {
        assert_eq!(
            Language::parse("DE").map(|l| l.as_str().to_owned()),
            Ok("de".to_owned())
        );
        for bad in ["", "d", "deu", "d1", "é1", "de "] {
            assert_eq!(Language::parse(bad), Err(ValueError::Language), "{bad:?}");
        }
    }

    #[test]
    fn project_name_counts_characters_not_bytes() {
        assert!(ProjectName::parse(&"é".repeat(200)).is_ok());
        assert!(ProjectName::parse(&"é".repeat(201)).is_err());
        assert!(ProjectName::parse("").is_err());
    }

    #[test]
    fn duration_prints_three_fraction_digits() {
        assert_eq!(DurationMs::from_millis(250_480).to_string(), "250.480");
        assert_eq!(DurationMs::from_millis(5).to_string(), "0.005");
        assert_eq!(DurationMs::from_secs_f64(1.0004).to_string(), "1.000");
        assert_eq!(DurationMs::from_secs_f64(f64::NAN).millis(), 0);
    }

    proptest! {
        #[test]
        fn duration_string_round_trips(ms in 0u64..10_000_000_000) {
            let text = DurationMs::from_millis(ms).to_string();
            let (whole, frac) = text.split_once('.').expect("has a dot");
            prop_assert_eq!(frac.len(), 3);
            prop_assert_eq!(whole.parse::<u64>().expect("int") * 1000 + frac.parse::<u64>().expect("int"), ms);
        }

        #[test]
        fn size_accepts_exactly_the_range(n in any::<u64>()) {
            prop_assert_eq!(SizeBytes::new(n).is_ok(), (SizeBytes::MIN..=SizeBytes::MAX).contains(&n));
        }
    }
}
