//! Where an Ogg stream ends, as its last intact page states.
//!
//! symphonia 0.5 finds an Ogg track's length by scanning pages forward from up to 64 KiB before
//! the end, and stops at the first damaged page: a small file garbled in the middle states no
//! length at all, and what is left plays as if the file were whole. The last page's granule
//! position is the stream's end whatever happened before it; it is read here, from the end,
//! with its checksum verified. The page that closes the stream (`end of stream` flag) says the
//! file is complete, so that packets ending short of it mean damage rather than a cut.

use crate::source::read_up_to;
use std::io::{self, Read, Seek, SeekFrom};

use symphonia::core::checksum::Crc32;
use symphonia::core::io::Monitor;

/// How much of the end of the file is searched: one page is at most 65 307 bytes.
const TAIL: u64 = 64 * 1024 + 512;
/// The fixed part of a page header, before its segment table.
const HEADER: usize = 27;
/// The `end of stream` flag of a page header.
const EOS: u8 = 0x04;

/// What the last intact page of the first logical stream states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastPage {
    /// The stream's serial number (symphonia's track id).
    pub(crate) serial: u32,
    /// Its granule position: where the stream's last complete packet ends, in the codec's
    /// sample units (48 kHz for Opus, the sample rate for Vorbis).
    pub(crate) granule: u64,
    /// The end of the page, when it closes the stream (the file is complete there).
    pub(crate) complete_at: Option<u64>,
}

/// The last page of the stream that the file's first page opens, with a valid checksum and a
/// granule position, found within the last 64 KiB; `None` when there is none (not Ogg, or
/// nothing intact there). `len` is the file's size. Leaves the reader at an unspecified
/// position.
pub(crate) fn last_page<R: Read + Seek + ?Sized>(
    reader: &mut R,
    len: u64,
) -> io::Result<Option<LastPage>> {
    reader.seek(SeekFrom::Start(0))?;
    let mut first = [0u8; HEADER];
    if read_up_to(reader, &mut first)? < HEADER || &first[0..4] != b"OggS" {
        return Ok(None);
    }
    let serial = le_u32(&first[14..18]);
    let start = len.saturating_sub(TAIL);
    reader.seek(SeekFrom::Start(start))?;
    // At most `TAIL` bytes: `len - start` is no larger.
    let mut tail = vec![0u8; usize::try_from(len - start).unwrap_or(0)];
    let got = read_up_to(reader, &mut tail)?;
    tail.truncate(got);
    let mut at = tail.len();
    while let Some(found) = rfind_capture(&tail[..at]) {
        at = found;
        let Some(page) = page_at(&tail, found) else {
            continue;
        };
        if page.serial != serial || page.granule == u64::MAX {
            continue;
        }
        return Ok(Some(LastPage {
            serial,
            granule: page.granule,
            complete_at: (page.flags & EOS != 0).then_some(start + page.end as u64),
        }));
    }
    Ok(None)
}

/// An intact page found in a buffer.
struct Page {
    flags: u8,
    /// `u64::MAX` (−1) when no packet ends on the page.
    granule: u64,
    serial: u32,
    /// Where the page ends in the buffer.
    end: usize,
}

/// The page starting at `buf[at..]`, when it is whole and its checksum matches.
fn page_at(buf: &[u8], at: usize) -> Option<Page> {
    let header = buf.get(at..at + HEADER)?;
    if header[4] != 0 {
        return None;
    }
    let segments = usize::from(header[26]);
    let table = buf.get(at + HEADER..at + HEADER + segments)?;
    let body: usize = table.iter().map(|&b| usize::from(b)).sum();
    let end = at + HEADER + segments + body;
    let page = buf.get(at..end)?;
    // The checksum covers the whole page with its own field zeroed.
    let mut crc = Crc32::new(0);
    crc.process_buf_bytes(&page[..22]);
    crc.process_buf_bytes(&[0; 4]);
    crc.process_buf_bytes(&page[26..]);
    if crc.crc() != le_u32(&page[22..26]) {
        return None;
    }
    let mut granule = [0u8; 8];
    granule.copy_from_slice(&header[6..14]);
    Some(Page {
        flags: header[5],
        granule: u64::from_le_bytes(granule),
        serial: le_u32(&header[14..18]),
        end,
    })
}

/// The start of the last `OggS` capture pattern in `buf`.
fn rfind_capture(buf: &[u8]) -> Option<usize> {
    buf.windows(4).rposition(|w| w == b"OggS")
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// One Ogg page holding `body` as a single packet.
    fn page(flags: u8, granule: u64, serial: u32, seq: u32, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 255);
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(1);
        p.push(body.len() as u8);
        p.extend_from_slice(body);
        let mut crc = Crc32::new(0);
        crc.process_buf_bytes(&p);
        let sum = crc.crc().to_le_bytes();
        p[22..26].copy_from_slice(&sum);
        p
    }

    fn last(file: &[u8]) -> Option<LastPage> {
        last_page(&mut Cursor::new(file), file.len() as u64).unwrap()
    }

    #[test]
    fn the_last_intact_page_of_the_first_stream_states_the_end() {
        let mut file = page(0x02, 0, 7, 0, b"head");
        file.extend(page(0, 1000, 7, 1, b"audio"));
        let complete_at = file.len() + page(EOS, 2000, 7, 2, b"end").len();
        file.extend(page(EOS, 2000, 7, 2, b"end"));
        assert_eq!(
            last(&file),
            Some(LastPage {
                serial: 7,
                granule: 2000,
                complete_at: Some(complete_at as u64)
            })
        );
        // Another stream's page, a page with no packet end (-1) and a torn page are passed over.
        file.extend(page(0, 9000, 8, 0, b"other"));
        file.extend(page(0, u64::MAX, 7, 3, b"cont"));
        file.extend_from_slice(&page(0, 9000, 7, 4, b"torn")[..20]);
        assert_eq!(last(&file).map(|p| p.granule), Some(2000));
    }

    #[test]
    fn a_damaged_or_missing_end_page_falls_back_or_says_nothing() {
        let mut file = page(0x02, 0, 7, 0, b"head");
        file.extend(page(0, 1000, 7, 1, b"audio"));
        let mut end = page(EOS, 2000, 7, 2, b"end");
        end[30] ^= 0xFF;
        file.extend(end);
        assert_eq!(
            last(&file),
            Some(LastPage {
                serial: 7,
                granule: 1000,
                complete_at: None
            }),
            "a bad checksum is not the end"
        );
        assert_eq!(last(b"RIFF\x24\0\0\0WAVEfmt of some length......"), None);
        assert_eq!(last(b""), None);
    }
}
