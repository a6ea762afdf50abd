//! First-chunk sniffing: which supported format the first bytes of an upload are.
//!
//! The verdict comes from exactly the bytes given (the caller guarantees at least 64). `infer`
//! decides the formats whose magic it matches exactly (WAV, FLAC, the ISO brands of MP4); the
//! rest need small matchers of our own, because `infer` accepts any MP3 frame sync as MP3, any
//! Ogg page as Ogg, knows neither AIFF-C nor the M4B brand, and needs more than 256 bytes to tell
//! WebM from Matroska.

use roughy_domain::MediaFormat;

/// The supported format of `head`, or `None` when it is anything else.
///
/// Matroska cannot tell audio-only from video at this point: it answers [`MediaFormat::Mkv`]
/// (probing refines it to [`MediaFormat::Mka`]). Random bytes behind a valid ID3v2 tag still
/// answer [`MediaFormat::Mp3`]: only probing can notice that.
pub fn sniff(head: &[u8]) -> Option<MediaFormat> {
    if infer::audio::is_wav(head) {
        return Some(MediaFormat::Wav);
    }
    if infer::audio::is_flac(head) {
        return Some(MediaFormat::Flac);
    }
    if is_aiff(head) {
        return Some(MediaFormat::Aiff);
    }
    if let Some(tag_len) = id3v2_len(head) {
        return Some(after_id3(head, tag_len));
    }
    if let Some(format) = ogg(head) {
        return format;
    }
    if let Some(format) = ftyp(head) {
        return format;
    }
    if is_quicktime_atom(head) {
        return Some(MediaFormat::Mov);
    }
    if let Some(format) = matroska(head) {
        return format;
    }
    if is_adts(head) {
        return Some(MediaFormat::Aac);
    }
    if is_mp3_frame(head) {
        return Some(MediaFormat::Mp3);
    }
    None
}

/// `FORM....AIFF` or `FORM....AIFC` (infer only knows the former).
fn is_aiff(head: &[u8]) -> bool {
    head.len() >= 12 && &head[0..4] == b"FORM" && matches!(&head[8..12], b"AIFF" | b"AIFC")
}

/// The total length of a well-formed ID3v2 tag at the start, header (and footer) included.
fn id3v2_len(head: &[u8]) -> Option<usize> {
    let header = head.get(0..10)?;
    // Version 2.2 to 2.4, revision never 0xFF, size as four 7-bit bytes (syncsafe).
    let well_formed = &header[0..3] == b"ID3"
        && (2..=4).contains(&header[3])
        && header[4] != 0xFF
        && header[6..10].iter().all(|b| b & 0x80 == 0);
    if !well_formed {
        return None;
    }
    let size = header[6..10]
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(*b));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// What an ID3v2 tag precedes. Usually MP3, but ADTS AAC and FLAC files are sometimes tagged
/// the same way; when the bytes after the tag are in the head, they decide.
fn after_id3(head: &[u8], tag_len: usize) -> MediaFormat {
    match head.get(tag_len..) {
        Some(rest) if infer::audio::is_flac(rest) => MediaFormat::Flac,
        Some(rest) if is_adts(rest) => MediaFormat::Aac,
        _ => MediaFormat::Mp3,
    }
}

/// An Ogg stream: `Some(Some(_))` for Vorbis or Opus, `Some(None)` for any other Ogg codec,
/// `None` when this is not an Ogg page at all.
fn ogg(head: &[u8]) -> Option<Option<MediaFormat>> {
    if !infer::audio::is_ogg(head) {
        return None;
    }
    // The first page header is 27 bytes plus one lacing value per segment; the first packet
    // (the codec's identification header) starts right after it.
    let segments = usize::from(*head.get(26)?);
    let packet = head.get(27 + segments..).unwrap_or_default();
    Some(if packet.starts_with(b"\x01vorbis") {
        Some(MediaFormat::Ogg)
    } else if packet.starts_with(b"OpusHead") {
        Some(MediaFormat::Opus)
    } else {
        None
    })
}

/// Brands that mark an MPEG-4 audio file.
const M4A_BRANDS: [&[u8; 4]; 3] = [b"M4A ", b"M4B ", b"M4P "];

/// Whether an `ftyp` brand marks MP4 video (the ISO base media brands and their relatives).
fn is_mp4_brand(brand: &[u8]) -> bool {
    // infer's list of MP4 brands is complete for the ISO family; it reads the major brand at
    // offset 8 of an `ftyp` box, so give it a synthetic box holding this brand.
    let mut probe = *b"\0\0\0\x10ftyp____\0\0\0\0";
    probe[8..12].copy_from_slice(brand);
    infer::video::is_mp4(&probe) || matches!(brand, b"M4V " | b"M4VH" | b"M4VP")
}

/// An ISO base media file starting with `ftyp`: `Some(None)` for a brand outside the table
/// (3GP, HEIF/AVIF images, …), `None` when there is no `ftyp` box.
fn ftyp(head: &[u8]) -> Option<Option<MediaFormat>> {
    if head.get(4..8)? != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?) as usize;
    let major = head.get(8..12)?;
    // Compatible brands follow the minor version, up to the box end or the end of the head.
    let end = size.clamp(16, head.len().max(16));
    let compatible: Vec<&[u8]> = head
        .get(16..end)
        .unwrap_or_default()
        .chunks_exact(4)
        .collect();
    let is_m4a = |brand: &[u8]| M4A_BRANDS.iter().any(|m| brand == &m[..]);

    Some(if major == b"qt  " {
        Some(MediaFormat::Mov)
    } else if is_m4a(major) {
        Some(MediaFormat::M4a)
    } else if is_mp4_brand(major) {
        // iTunes audio sometimes declares a generic major brand and lists M4A compatible.
        if compatible.iter().any(|b| is_m4a(b)) {
            Some(MediaFormat::M4a)
        } else {
            Some(MediaFormat::Mp4)
        }
    } else {
        // An unknown major brand (3GP, HEIF, AVIF, CRX …) is another format even when it lists
        // ISO brands as compatible.
        None
    })
}

/// A QuickTime file without `ftyp`: it starts with a `moov`, `mdat`, `wide`, `free`, `skip` or
/// `pnot` atom of plausible size.
fn is_quicktime_atom(head: &[u8]) -> bool {
    let (Some(size), Some(kind)) = (head.get(0..4), head.get(4..8)) else {
        return false;
    };
    let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    // 0 = to end of file, 1 = 64-bit size follows; otherwise at least the 8-byte header.
    let plausible = size <= 1 || size >= 8;
    plausible
        && matches!(
            kind,
            b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot"
        )
}

/// The EBML magic.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
/// The EBML `DocType` element id.
const EBML_DOCTYPE: u32 = 0x4282;

/// A Matroska/WebM file: `Some(Some(_))` by its `DocType`, `Some(None)` for another EBML
/// document type, `None` when there is no EBML magic.
fn matroska(head: &[u8]) -> Option<Option<MediaFormat>> {
    if !head.starts_with(&EBML_MAGIC) {
        return None;
    }
    let doc_type = ebml_doc_type(head).or_else(|| {
        // The header runs past the head (or is malformed): the DocType string still sits in
        // the first ~40 bytes in practice.
        let window = &head[..head.len().min(64)];
        if contains(window, b"webm") {
            Some(b"webm".as_slice())
        } else if contains(window, b"matroska") {
            Some(b"matroska".as_slice())
        } else {
            None
        }
    });
    Some(match doc_type {
        Some(b"webm") => Some(MediaFormat::Webm),
        Some(b"matroska") => Some(MediaFormat::Mkv),
        _ => None,
    })
}

/// The `DocType` of the EBML header at the start of `head`, when the head holds it.
fn ebml_doc_type(head: &[u8]) -> Option<&[u8]> {
    let (id, id_len) = ebml_vint(head, false)?;
    if id != u64::from(u32::from_be_bytes(EBML_MAGIC)) {
        return None;
    }
    let (size, size_len) = ebml_vint(&head[id_len..], true)?;
    let body_start = id_len + size_len;
    // The body may run past the head: read what is there.
    let body_end = usize::try_from(size)
        .ok()
        .and_then(|s| body_start.checked_add(s))
        .map_or(head.len(), |end| end.min(head.len()));
    let mut body = head.get(body_start..body_end)?;
    while !body.is_empty() {
        let (child, child_len) = ebml_vint(body, false)?;
        let (len, len_len) = ebml_vint(&body[child_len..], true)?;
        let start = child_len + len_len;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let data = body.get(start..end)?;
        if child == u64::from(EBML_DOCTYPE) {
            // Strings may be padded with NULs.
            let trimmed = data.split(|b| *b == 0).next().unwrap_or_default();
            return Some(trimmed);
        }
        body = &body[end..];
    }
    None
}

/// Reads an EBML variable-length integer: `(value, length)`. Element ids keep their length
/// marker bits (`strip_marker` false); sizes drop them.
fn ebml_vint(bytes: &[u8], strip_marker: bool) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let raw = bytes.get(..len)?;
    let mut value = raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if strip_marker {
        value &= (1u64 << (7 * len)) - 1;
    }
    Some((value, len))
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An ADTS AAC frame header: 12-bit sync, layer `00`, a valid sampling-frequency index and a
/// frame length of at least the header.
fn is_adts(head: &[u8]) -> bool {
    let Some(h) = head.get(0..7) else {
        return false;
    };
    let sync = h[0] == 0xFF && h[1] & 0xF6 == 0xF0;
    let freq_index = (h[2] >> 2) & 0x0F;
    let frame_len =
        (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    let header_len = if h[1] & 0x01 == 1 { 7 } else { 9 };
    if !(sync && freq_index < 13 && frame_len >= header_len) {
        return false;
    }
    // When the next frame starts inside the head it must be a frame too.
    match head.get(frame_len..frame_len + 2) {
        Some(next) => next[0] == 0xFF && next[1] & 0xF6 == 0xF0,
        None => true,
    }
}

/// An MPEG audio Layer III frame header (no ID3 tag in front).
fn is_mp3_frame(head: &[u8]) -> bool {
    let Some(len) = mp3_frame_len(head) else {
        return false;
    };
    // When the next frame starts inside the head it must be a Layer III frame too; this weeds
    // out random bytes that happen to start with a sync word.
    match head.get(len..) {
        Some(next) if next.len() >= 4 => mp3_frame_len(next).is_some(),
        _ => true,
    }
}

/// The length of the MPEG audio Layer III frame whose header starts `bytes`, when valid.
fn mp3_frame_len(bytes: &[u8]) -> Option<usize> {
    let h = bytes.get(0..4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 00 = 2.5, 01 = reserved, 10 = 2, 11 = 1
    let layer = (h[1] >> 1) & 0x03; // 01 = Layer III
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0x03);
    let padding = usize::from((h[2] >> 1) & 0x01);
    // Free-format (0) frames have no computable length; 15 is invalid.
    if version == 0b01 || layer != 0b01 || bitrate_index == 0 || bitrate_index == 15 {
        return None;
    }
    const MPEG1_KBPS: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const MPEG2_KBPS: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const MPEG1_RATES: [usize; 3] = [44_100, 48_000, 32_000];
    let rate = MPEG1_RATES.get(rate_index)?
        >> match version {
            0b11 => 0,
            0b10 => 1,
            _ => 2,
        };
    let (kbps, samples) = if version == 0b11 {
        (MPEG1_KBPS[bitrate_index], 1152)
    } else {
        (MPEG2_KBPS[bitrate_index], 576)
    };
    Some(samples / 8 * kbps * 1000 / rate + padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pads a synthetic head to the 64 bytes the caller guarantees.
    fn head(prefix: &[u8]) -> Vec<u8> {
        let mut bytes = prefix.to_vec();
        bytes.resize(64.max(prefix.len()), 0);
        bytes
    }

    fn ftyp_head(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut bytes = size.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(major);
        bytes.extend_from_slice(&[0, 0, 2, 0]);
        for brand in compatible {
            bytes.extend_from_slice(*brand);
        }
        bytes.extend_from_slice(&[0, 0, 0, 8]);
        bytes.extend_from_slice(b"free");
        head(&bytes)
    }

    fn ebml_head(doc_type: &[u8]) -> Vec<u8> {
        let mut body = vec![0x42, 0x86, 0x81, 0x01]; // EBMLVersion 1
        body.extend_from_slice(&[0x42, 0xF7, 0x81, 0x01]); // EBMLReadVersion 1
        body.extend_from_slice(&[0x42, 0xF2, 0x81, 0x04]); // EBMLMaxIDLength 4
        body.extend_from_slice(&[0x42, 0xF3, 0x81, 0x08]); // EBMLMaxSizeLength 8
        body.extend_from_slice(&[0x42, 0x82, 0x80 | doc_type.len() as u8]);
        body.extend_from_slice(doc_type);
        body.extend_from_slice(&[0x42, 0x87, 0x81, 0x04]); // DocTypeVersion 4
        let mut bytes = EBML_MAGIC.to_vec();
        bytes.push(0x80 | body.len() as u8);
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01]); // Segment
        head(&bytes)
    }

    fn ogg_head(packet: &[u8]) -> Vec<u8> {
        let mut bytes = b"OggS\0\x02".to_vec();
        bytes.extend_from_slice(&[0; 20]); // granule, serial, sequence, CRC
        bytes.push(1); // one segment
        bytes.push(packet.len() as u8);
        bytes.extend_from_slice(packet);
        head(&bytes)
    }

    #[test]
    fn riff_wave_is_wav_and_riff_avi_is_not() {
        assert_eq!(
            sniff(&head(b"RIFF\x24\0\0\0WAVEfmt ")),
            Some(MediaFormat::Wav)
        );
        assert_eq!(sniff(&head(b"RIFF\x24\0\0\0AVI LIST")), None);
    }

    #[test]
    fn aiff_and_aifc_are_aiff() {
        assert_eq!(
            sniff(&head(b"FORM\0\0\x10\0AIFFCOMM")),
            Some(MediaFormat::Aiff)
        );
        assert_eq!(
            sniff(&head(b"FORM\0\0\x10\0AIFCFVER")),
            Some(MediaFormat::Aiff)
        );
        assert_eq!(sniff(&head(b"FORM\0\0\x10\0ILBMBMHD")), None);
    }

    #[test]
    fn flac_is_flac_even_behind_an_id3_tag() {
        assert_eq!(sniff(&head(b"fLaC\0\0\0\x22")), Some(MediaFormat::Flac));
        assert_eq!(
            sniff(&head(b"ID3\x04\0\0\0\0\0\0fLaC\0\0\0\x22")),
            Some(MediaFormat::Flac)
        );
    }

    #[test]
    fn id3_tag_means_mp3_whatever_follows() {
        let mut bytes = b"ID3\x03\0\0\0\0\x01\x00".to_vec(); // 128-byte tag, runs past the head
        bytes.extend((0..54u8).map(|i| i.wrapping_mul(37)));
        assert_eq!(sniff(&bytes), Some(MediaFormat::Mp3));
        // Random bytes right behind a short tag are still MP3 here; probing catches them.
        let mut noise = b"ID3\x04\0\0\0\0\0\0".to_vec();
        noise.extend((0..54u8).map(|i| i.wrapping_mul(91).wrapping_add(7)));
        assert_eq!(sniff(&noise), Some(MediaFormat::Mp3));
        // A malformed size byte (high bit set) is not an ID3 tag.
        assert_eq!(sniff(&head(b"ID3\x04\0\0\x80\0\0\0")), None);
    }

    #[test]
    fn mpeg_layer_three_frames_are_mp3_other_layers_are_not() {
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no CRC: a 417-byte frame.
        assert_eq!(
            sniff(&head(&[0xFF, 0xFB, 0x90, 0x64])),
            Some(MediaFormat::Mp3)
        );
        // MPEG-2 Layer III, 8 kbit/s, 22.05 kHz: 26-byte frames, the second one is checked.
        let frame = [0xFF, 0xF3, 0x10, 0xC4];
        let mut two = frame.to_vec();
        two.resize(26, 0);
        two.extend_from_slice(&frame);
        assert_eq!(sniff(&head(&two)), Some(MediaFormat::Mp3));
        let mut broken = frame.to_vec();
        broken.resize(26, 0);
        broken.extend_from_slice(b"junk");
        assert_eq!(sniff(&head(&broken)), None);
        // Layer II (MP2) and Layer I are not supported.
        assert_eq!(sniff(&head(&[0xFF, 0xFD, 0x90, 0x64])), None);
        assert_eq!(sniff(&head(&[0xFF, 0xFF, 0x90, 0x64])), None);
        // Reserved version, invalid bitrate, reserved sample rate.
        assert_eq!(sniff(&head(&[0xFF, 0xEB, 0x90, 0x64])), None);
        assert_eq!(sniff(&head(&[0xFF, 0xFB, 0xF0, 0x64])), None);
        assert_eq!(sniff(&head(&[0xFF, 0xFB, 0x9C, 0x64])), None);
    }

    #[test]
    fn adts_is_aac() {
        // MPEG-4 AAC LC, 44.1 kHz, stereo, 371-byte frame.
        assert_eq!(
            sniff(&head(&[0xFF, 0xF1, 0x50, 0x80, 0x2E, 0x7F, 0xFC])),
            Some(MediaFormat::Aac)
        );
        // MPEG-2 ID bit, with CRC.
        assert_eq!(
            sniff(&head(&[0xFF, 0xF8, 0x50, 0x80, 0x2E, 0x7F, 0xFC])),
            Some(MediaFormat::Aac)
        );
        // Reserved sampling-frequency index 15.
        assert_eq!(
            sniff(&head(&[0xFF, 0xF1, 0x7C, 0x80, 0x2E, 0x7F, 0xFC])),
            None
        );
    }

    #[test]
    fn ogg_is_told_apart_by_its_first_packet() {
        assert_eq!(
            sniff(&ogg_head(b"\x01vorbis\0\0\0\0\x02")),
            Some(MediaFormat::Ogg)
        );
        assert_eq!(
            sniff(&ogg_head(b"OpusHead\x01\x02")),
            Some(MediaFormat::Opus)
        );
        assert_eq!(sniff(&ogg_head(b"\x7fFLAC\x01\0")), None);
        assert_eq!(sniff(&ogg_head(b"\x80theora\x03")), None);
        assert_eq!(sniff(&ogg_head(b"Speex   1.2")), None);
    }

    #[test]
    fn ftyp_brands_decide_m4a_mp4_and_mov() {
        assert_eq!(
            sniff(&ftyp_head(b"M4A ", &[b"M4A ", b"mp42", b"isom"])),
            Some(MediaFormat::M4a)
        );
        assert_eq!(
            sniff(&ftyp_head(b"M4B ", &[b"M4B "])),
            Some(MediaFormat::M4a)
        );
        assert_eq!(
            sniff(&ftyp_head(b"mp42", &[b"isom", b"M4A "])),
            Some(MediaFormat::M4a)
        );
        for major in [
            b"isom", b"mp41", b"mp42", b"avc1", b"iso2", b"iso6", b"dash", b"M4V ",
        ] {
            assert_eq!(
                sniff(&ftyp_head(major, &[b"isom"])),
                Some(MediaFormat::Mp4),
                "{major:?}"
            );
        }
        assert_eq!(
            sniff(&ftyp_head(b"qt  ", &[b"qt  "])),
            Some(MediaFormat::Mov)
        );
        // 3GP and HEIF/AVIF images list ISO brands too, but are other formats.
        assert_eq!(sniff(&ftyp_head(b"3gp4", &[b"isom", b"3gp4"])), None);
        assert_eq!(
            sniff(&ftyp_head(b"avif", &[b"avif", b"mif1", b"miaf"])),
            None
        );
        assert_eq!(sniff(&ftyp_head(b"heic", &[b"mif1", b"heic"])), None);
    }

    #[test]
    fn quicktime_without_ftyp_is_mov() {
        for kind in [b"moov", b"mdat", b"wide", b"free", b"skip"] {
            let mut bytes = vec![0, 0, 0, 8];
            bytes.extend_from_slice(kind);
            assert_eq!(sniff(&head(&bytes)), Some(MediaFormat::Mov), "{kind:?}");
        }
        // An impossible atom size.
        assert_eq!(sniff(&head(b"\0\0\0\x04moov")), None);
    }

    #[test]
    fn matroska_is_told_apart_by_its_doctype_within_64_bytes() {
        assert_eq!(sniff(&ebml_head(b"webm")), Some(MediaFormat::Webm));
        assert_eq!(sniff(&ebml_head(b"matroska")), Some(MediaFormat::Mkv));
        assert_eq!(sniff(&ebml_head(b"other")), None);
        assert_eq!(ebml_head(b"matroska").len(), 64);
    }

    #[test]
    fn matroska_header_cut_by_the_head_falls_back_to_a_search() {
        // An EBML header claiming 200 bytes whose first child claims to run past the head.
        let mut bytes = EBML_MAGIC.to_vec();
        bytes.extend_from_slice(&[0x40, 0xC8]); // size 200, 2-byte vint
        bytes.extend_from_slice(&[0xEC, 0xFF]); // Void of unknown size
        bytes.extend_from_slice(&[0x42, 0x82, 0x84]);
        bytes.extend_from_slice(b"webm");
        assert_eq!(sniff(&head(&bytes)), Some(MediaFormat::Webm));
        // No DocType visible at all.
        let mut blind = EBML_MAGIC.to_vec();
        blind.extend_from_slice(&[0x40, 0xC8, 0xEC, 0xC0]);
        assert_eq!(sniff(&head(&blind)), None);
    }

    #[test]
    fn everything_else_is_rejected() {
        let text = head(b"Hello, this is plain text and certainly not audio or video at all!");
        let mut random = Vec::with_capacity(64);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..64 {
            // xorshift: deterministic noise
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            random.push(x as u8);
        }
        for (name, bytes) in [
            ("text", text),
            ("png", head(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")),
            ("zip", head(b"PK\x03\x04\x14\0\0\0")),
            ("pdf", head(b"%PDF-1.7\n")),
            ("avi", head(b"RIFF\x24\0\0\0AVI LIST")),
            ("flv", head(b"FLV\x01\x05\0\0\0\x09")),
            ("mpeg-ts", head(&[0x47, 0x40, 0x00, 0x10, 0x00])),
            ("mpeg-ps", head(&[0x00, 0x00, 0x01, 0xBA, 0x44])),
            (
                "wmv",
                head(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]),
            ),
            ("zeros", head(&[])),
            ("random", random),
        ] {
            assert_eq!(sniff(&bytes), None, "{name}");
        }
    }
}
