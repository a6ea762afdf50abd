//! Synthesised media: valid files of any length, for tests and benchmarks.

/// The 44-byte header of a 16-bit mono PCM WAV at `rate` Hz whose data is `data_len` bytes.
pub fn wav_header(rate: u32, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&rate.saturating_mul(2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// A valid 16-bit mono PCM WAV of `millis` milliseconds at `rate` Hz: a 440 Hz tone.
pub fn wav(millis: u64, rate: u32) -> Vec<u8> {
    let samples = usize::try_from(u64::from(rate) * millis / 1000).unwrap_or(usize::MAX / 4);
    let data_len = u32::try_from(samples * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + samples * 2);
    out.extend_from_slice(&wav_header(rate, data_len));
    for i in 0..samples {
        let t = i as f64 / f64::from(rate);
        let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthesised_wav_is_sniffed_and_sized_as_asked() {
        let w = wav(1_500, 8_000);
        assert_eq!(w.len(), 44 + 12_000 * 2);
        assert_eq!(
            crate::sniff(&w[..64]),
            Some(roughy_domain::MediaFormat::Wav)
        );
    }
}
