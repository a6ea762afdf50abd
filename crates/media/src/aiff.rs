//! The exact duration an AIFF / AIFF-C file states in its `COMM` chunk.
//!
//! symphonia 0.5 derives an AIFF track's frame count from the `SSND` chunk's size, which
//! includes the chunk's 8-byte offset/block-size prefix: a 16-bit mono file reads 4 frames too
//! long (0.5 ms at 8 kHz, enough to tip a file of exactly one minute into a second billed
//! minute). `COMM` states the frame count and sample rate exactly; they are read here.

use std::io::{self, Read, Seek, SeekFrom};

/// How many chunks are looked at before giving up.
const MAX_CHUNKS: usize = 256;

/// The duration in seconds that the `COMM` chunk states, when there is a well-formed one with
/// a positive sample rate. Leaves the reader at an unspecified position.
pub(crate) fn stated_duration<R: Read + Seek + ?Sized>(reader: &mut R) -> io::Result<Option<f64>> {
    reader.seek(SeekFrom::Start(0))?;
    let mut form = [0u8; 12];
    if !read_exact_or_eof(reader, &mut form)? {
        return Ok(None);
    }
    if &form[0..4] != b"FORM" || !matches!(&form[8..12], b"AIFF" | b"AIFC") {
        return Ok(None);
    }
    let mut pos = 12u64;
    for _ in 0..MAX_CHUNKS {
        reader.seek(SeekFrom::Start(pos))?;
        let mut header = [0u8; 8];
        if !read_exact_or_eof(reader, &mut header)? {
            return Ok(None);
        }
        let len = u64::from(u32::from_be_bytes([
            header[4], header[5], header[6], header[7],
        ]));
        if &header[0..4] == b"COMM" {
            // channels (2), frames (4), sample size (2), sample rate (80-bit extended).
            let mut comm = [0u8; 18];
            if len < 18 || !read_exact_or_eof(reader, &mut comm)? {
                return Ok(None);
            }
            let frames = u32::from_be_bytes([comm[2], comm[3], comm[4], comm[5]]);
            let mut rate = [0u8; 10];
            rate.copy_from_slice(&comm[8..18]);
            let rate = extended_to_f64(rate);
            return Ok((rate.is_finite() && rate > 0.0).then(|| f64::from(frames) / rate));
        }
        // Chunks are padded to an even length.
        pos = pos.saturating_add(8).saturating_add(len + (len & 1));
    }
    Ok(None)
}

/// An IEEE 754 80-bit extended float (big-endian, as AIFF stores sample rates) as `f64`.
fn extended_to_f64(bytes: [u8; 10]) -> f64 {
    let sign = if bytes[0] & 0x80 != 0 { -1.0 } else { 1.0 };
    let exponent = (i32::from(bytes[0] & 0x7F) << 8) | i32::from(bytes[1]);
    let mut mantissa = [0u8; 8];
    mantissa.copy_from_slice(&bytes[2..10]);
    let mantissa = u64::from_be_bytes(mantissa);
    if exponent == 0 && mantissa == 0 {
        return 0.0;
    }
    if exponent == 0x7FFF {
        return f64::NAN;
    }
    // value = mantissa (with its explicit integer bit) × 2^(exponent − bias − 63)
    sign * mantissa as f64 * 2f64.powi(exponent - 16_383 - 63)
}

/// Fills `buf`; `false` when the reader ends first.
fn read_exact_or_eof<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// 8000 Hz, 44100 Hz and 48000 Hz as AIFF writes them.
    const R8000: [u8; 10] = [0x40, 0x0B, 0xFA, 0, 0, 0, 0, 0, 0, 0];
    const R44100: [u8; 10] = [0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0];
    const R48000: [u8; 10] = [0x40, 0x0E, 0xBB, 0x80, 0, 0, 0, 0, 0, 0];

    fn aiff(kind: &[u8; 4], chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut body = kind.to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(data.len() as u32).to_be_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut file = b"FORM".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_be_bytes());
        file.extend(body);
        file
    }

    fn comm(frames: u32, rate: [u8; 10]) -> Vec<u8> {
        let mut data = 1u16.to_be_bytes().to_vec();
        data.extend_from_slice(&frames.to_be_bytes());
        data.extend_from_slice(&16u16.to_be_bytes());
        data.extend_from_slice(&rate);
        data
    }

    #[test]
    fn decodes_extended_sample_rates() {
        assert_eq!(extended_to_f64(R8000), 8_000.0);
        assert_eq!(extended_to_f64(R44100), 44_100.0);
        assert_eq!(extended_to_f64(R48000), 48_000.0);
        assert_eq!(extended_to_f64([0; 10]), 0.0);
    }

    #[test]
    fn reads_comm_after_other_chunks_including_odd_sized_ones() {
        let file = aiff(
            b"AIFC",
            &[
                (b"FVER", vec![0xA2, 0x80, 0x51, 0x40]),
                (b"NAME", b"odd".to_vec()),
                (b"COMM", comm(24_000, R8000)),
                (b"SSND", vec![0; 64]),
            ],
        );
        let secs = stated_duration(&mut Cursor::new(file)).unwrap();
        assert_eq!(secs, Some(3.0));
    }

    #[test]
    fn no_comm_or_not_aiff_is_none() {
        let file = aiff(b"AIFF", &[(b"SSND", vec![0; 16])]);
        assert_eq!(stated_duration(&mut Cursor::new(file)).unwrap(), None);
        let wav = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
        assert_eq!(stated_duration(&mut Cursor::new(wav)).unwrap(), None);
        let zero_rate = aiff(b"AIFF", &[(b"COMM", comm(100, [0; 10]))]);
        assert_eq!(stated_duration(&mut Cursor::new(zero_rate)).unwrap(), None);
    }
}
