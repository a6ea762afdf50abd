//! The canonical media format table. Sniffing, the asset fields and downloads all read it.

/// What kind of media an asset holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// Audio only.
    Audio,
    /// Video (with or without audio).
    Video,
}

impl MediaType {
    /// The wire name (`audio`, `video`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }
}

/// A supported media format. Anything else is rejected at the first chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaFormat {
    /// MPEG-1/2 Layer III.
    Mp3,
    /// RIFF WAVE.
    Wav,
    /// AIFF / AIFF-C.
    Aiff,
    /// FLAC.
    Flac,
    /// Ogg Vorbis.
    Ogg,
    /// Ogg Opus.
    Opus,
    /// MP4 with an M4A brand.
    M4a,
    /// AAC in ADTS framing.
    Aac,
    /// Matroska without a video track (refined from `Mkv` during processing).
    Mka,
    /// MP4 video.
    Mp4,
    /// QuickTime.
    Mov,
    /// Matroska.
    Mkv,
    /// WebM.
    Webm,
}

/// One row of the table: `(format, type, content_type, extension)`.
type Row = (MediaFormat, MediaType, &'static str, &'static str);

const TABLE: [Row; 13] = [
    (MediaFormat::Mp3, MediaType::Audio, "audio/mpeg", "mp3"),
    (MediaFormat::Wav, MediaType::Audio, "audio/wav", "wav"),
    (MediaFormat::Aiff, MediaType::Audio, "audio/aiff", "aiff"),
    (MediaFormat::Flac, MediaType::Audio, "audio/flac", "flac"),
    (MediaFormat::Ogg, MediaType::Audio, "audio/ogg", "ogg"),
    (MediaFormat::Opus, MediaType::Audio, "audio/opus", "opus"),
    (MediaFormat::M4a, MediaType::Audio, "audio/mp4", "m4a"),
    (MediaFormat::Aac, MediaType::Audio, "audio/aac", "aac"),
    (
        MediaFormat::Mka,
        MediaType::Audio,
        "audio/x-matroska",
        "mka",
    ),
    (MediaFormat::Mp4, MediaType::Video, "video/mp4", "mp4"),
    (MediaFormat::Mov, MediaType::Video, "video/quicktime", "mov"),
    (
        MediaFormat::Mkv,
        MediaType::Video,
        "video/x-matroska",
        "mkv",
    ),
    (MediaFormat::Webm, MediaType::Video, "video/webm", "webm"),
];

impl MediaFormat {
    /// Every supported format, in table order.
    pub fn all() -> impl Iterator<Item = MediaFormat> {
        TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> &'static Row {
        // The table lists every variant exactly once (pinned by a test).
        TABLE.iter().find(|row| row.0 == self).unwrap_or(&TABLE[0])
    }

    /// Audio or video.
    pub fn media_type(self) -> MediaType {
        self.row().1
    }

    /// The MIME type of the stored bytes.
    pub fn content_type(self) -> &'static str {
        self.row().2
    }

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.row().3
    }

    /// The format with this extension.
    pub fn from_extension(ext: &str) -> Option<Self> {
        TABLE.iter().find(|row| row.3 == ext).map(|row| row.0)
    }

    /// The format with this content type.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        TABLE
            .iter()
            .find(|row| row.2 == content_type)
            .map(|row| row.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_format_once_with_unique_names() {
        let formats: Vec<_> = MediaFormat::all().collect();
        assert_eq!(formats.len(), TABLE.len());
        for f in &formats {
            assert_eq!(formats.iter().filter(|g| *g == f).count(), 1);
            assert_eq!(MediaFormat::from_extension(f.extension()), Some(*f));
            assert_eq!(MediaFormat::from_content_type(f.content_type()), Some(*f));
        }
    }

    #[test]
    fn matroska_audio_is_audio_and_matroska_is_video() {
        assert_eq!(MediaFormat::Mka.media_type(), MediaType::Audio);
        assert_eq!(MediaFormat::Mkv.media_type(), MediaType::Video);
        assert_eq!(MediaFormat::M4a.content_type(), "audio/mp4");
    }
}
