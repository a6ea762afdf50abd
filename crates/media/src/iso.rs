//! The presentation duration of an ISO base media file (MP4, M4A, QuickTime).
//!
//! symphonia 0.5 reports each track's media duration (`mdhd`) and ignores edit lists, so an
//! AAC track counts its encoder priming and padding (some 20–45 ms too long). The movie header
//! (`mvhd`) states the presentation duration after the edit lists exactly; it is read here by
//! walking the box headers with seeks (the `moov` box may sit after a large `mdat`).

use std::io::{self, Read, Seek, SeekFrom};

/// How many boxes are looked at before giving up (a malformed file must not loop for long).
const MAX_BOXES: usize = 4096;

/// The movie header's duration in seconds, when the file has one that is known and non-zero
/// (fragmented files state 0). Leaves the reader at an unspecified position.
pub(crate) fn movie_duration<R: Read + Seek + ?Sized>(reader: &mut R) -> io::Result<Option<f64>> {
    let Some((moov_start, moov_end)) = find_box(reader, 0, u64::MAX, b"moov")? else {
        return Ok(None);
    };
    let Some((mvhd_start, _)) = find_box(reader, moov_start, moov_end, b"mvhd")? else {
        return Ok(None);
    };
    reader.seek(SeekFrom::Start(mvhd_start))?;
    let mut version = [0u8; 4];
    if !read_exact_or_eof(reader, &mut version)? {
        return Ok(None);
    }
    let (timescale, duration, unknown) = if version[0] == 1 {
        let mut body = [0u8; 28];
        if !read_exact_or_eof(reader, &mut body)? {
            return Ok(None);
        }
        (be_u32(&body[16..20]), be_u64(&body[20..28]), u64::MAX)
    } else {
        let mut body = [0u8; 16];
        if !read_exact_or_eof(reader, &mut body)? {
            return Ok(None);
        }
        let duration = u64::from(be_u32(&body[12..16]));
        (be_u32(&body[8..12]), duration, u64::from(u32::MAX))
    };
    if timescale == 0 || duration == 0 || duration == unknown {
        return Ok(None);
    }
    Ok(Some(duration as f64 / f64::from(timescale)))
}

/// Finds the first box of type `kind` among the boxes laid out from `start` to `end`:
/// `(payload start, box end)`.
fn find_box<R: Read + Seek + ?Sized>(
    reader: &mut R,
    start: u64,
    end: u64,
    kind: &[u8; 4],
) -> io::Result<Option<(u64, u64)>> {
    let mut pos = start;
    for _ in 0..MAX_BOXES {
        if pos.saturating_add(8) > end {
            return Ok(None);
        }
        reader.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 8];
        if !read_exact_or_eof(reader, &mut header)? {
            return Ok(None);
        }
        let (size, header_len) = match be_u32(&header[0..4]) {
            // A 64-bit size follows the type.
            1 => {
                let mut large = [0u8; 8];
                if !read_exact_or_eof(reader, &mut large)? {
                    return Ok(None);
                }
                (be_u64(&large), 16)
            }
            // The box runs to the end of its parent (or of the file).
            0 => (end.saturating_sub(pos), 8),
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return Ok(None);
        }
        let box_end = pos.saturating_add(size);
        if &header[4..8] == kind {
            return Ok(Some((pos + header_len, box_end.min(end))));
        }
        pos = box_end;
    }
    Ok(None)
}

/// Fills `buf`; `false` when the reader ends first.
fn read_exact_or_eof<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut bytes = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(payload);
        bytes
    }

    fn mvhd_v0(timescale: u32, duration: u32) -> Vec<u8> {
        let mut payload = vec![0u8; 12]; // version, flags, creation, modification
        payload.extend_from_slice(&timescale.to_be_bytes());
        payload.extend_from_slice(&duration.to_be_bytes());
        payload.resize(100, 0);
        boxed(b"mvhd", &payload)
    }

    #[test]
    fn reads_mvhd_behind_a_large_mdat() {
        let mut file = boxed(b"ftyp", b"isom\0\0\x02\0isom");
        file.extend(boxed(b"mdat", &[0xAB; 5000]));
        file.extend(boxed(b"moov", &mvhd_v0(1000, 3000)));
        assert_eq!(movie_duration(&mut Cursor::new(file)).unwrap(), Some(3.0));
    }

    #[test]
    fn reads_version_one_headers_and_large_sizes() {
        let mut payload = vec![1, 0, 0, 0];
        payload.extend_from_slice(&[0; 16]);
        payload.extend_from_slice(&48_000u32.to_be_bytes());
        payload.extend_from_slice(&144_000u64.to_be_bytes());
        let mut moov = 1u32.to_be_bytes().to_vec();
        moov.extend_from_slice(b"moov");
        let mvhd = boxed(b"mvhd", &payload);
        moov.extend_from_slice(&(16 + mvhd.len() as u64).to_be_bytes());
        moov.extend(mvhd);
        assert_eq!(movie_duration(&mut Cursor::new(moov)).unwrap(), Some(3.0));
    }

    #[test]
    fn no_moov_or_no_duration_is_none() {
        let cut = boxed(b"mdat", &[0; 100])[..50].to_vec();
        assert_eq!(movie_duration(&mut Cursor::new(cut)).unwrap(), None);
        let fragmented = boxed(b"moov", &mvhd_v0(1000, 0));
        assert_eq!(movie_duration(&mut Cursor::new(fragmented)).unwrap(), None);
        let broken = boxed(b"moov", &[0, 0, 0, 2, b'm', b'v', b'h', b'd']);
        assert_eq!(movie_duration(&mut Cursor::new(broken)).unwrap(), None);
    }
}
