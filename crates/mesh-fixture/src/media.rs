//! The binary payloads: a 1x1 red PNG and a short silent WAV, both base64 as MCP carries them.

use base64::{engine::general_purpose::STANDARD, Engine};

/// A 1x1 pixel, red, 8-bit RGB PNG (69 bytes), generated once and pasted here: the smallest image
/// every client can decode. Used by the image tool, the binary resource and the image prompt.
pub const RED_PIXEL_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

/// Sample rate of the generated WAV, in Hz.
const SAMPLE_RATE: u32 = 8_000;
/// Length of the generated WAV: 10 ms of silence, enough to be a valid, playable file.
const SAMPLES: u32 = 80;

/// A PCM WAV (mono, 16-bit, 8 kHz, 10 ms of silence), base64-encoded. Built from the RIFF layout
/// rather than pasted so its header fields are visibly consistent with its length.
pub fn silent_wav_base64() -> String {
    const BYTES_PER_SAMPLE: u16 = 2;
    let data_len = SAMPLES * u32::from(BYTES_PER_SAMPLE);
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes()); // size of everything after this field
    wav.extend_from_slice(b"WAVE");
    wav.extend_from_slice(b"fmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size for PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // format: PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // channels: mono
    wav.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    wav.extend_from_slice(&(SAMPLE_RATE * u32::from(BYTES_PER_SAMPLE)).to_le_bytes()); // byte rate
    wav.extend_from_slice(&BYTES_PER_SAMPLE.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0); // silence
    STANDARD.encode(wav)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_the_png_signature() {
        let bytes = STANDARD.decode(RED_PIXEL_PNG).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn wav_header_sizes_match_its_length() {
        let bytes = STANDARD.decode(silent_wav_base64()).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        let riff_size = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(riff_size + 8, bytes.len());
        let data_size = u32::from_le_bytes(bytes[40..44].try_into().unwrap()) as usize;
        assert_eq!(data_size + 44, bytes.len());
    }
}
