#!/usr/bin/env bash
# Regenerates the media corpus used by `crates/media/tests/corpus.rs` and writes
# `expected.tsv`. Needs ffmpeg/ffprobe (Debian 12: `apt-get install ffmpeg`); CI does not:
# the generated files are committed, this script documents how they were made.
#
# Every good file holds exactly 3.000 s of source signal (a 440 Hz sine; 64x64 `testsrc`
# at 10 fps for video). The expected duration is measured, not assumed:
# - audio files: the number of PCM samples ffmpeg decodes (LAME encoder delay and padding,
#   Opus pre-skip honoured) divided by the sample rate, i.e. the true playing time; ffprobe's
#   own `duration` is an estimate for some of them (ADTS) or counts what is not played (MP3:
#   the Info frame and the padding; Opus: the pre-skip);
# - MP4/M4A/MOV/MKV/WebM: the presentation duration after edit lists (`ffprobe
#   format=duration`; ffmpeg's AAC decoder does not trim the end padding an edit list cuts).
# MP3 without a Xing/LAME tag states no encoder delay: its playing time is the span of all its
# frames (117 x 576 samples = 3.056 s), what ffmpeg decodes and what the probe's scan measures.
# Matroska states times in milliseconds: an Opus MKA measures 3.002 s (the 3.008 s Duration
# less the 6.5 ms pre-skip), within the 30 ms the corpus test allows of the decoded 3.000 s.
#
# expected.tsv columns: file; format sniffed from the first 64 bytes (table extension, MKV
# refined to MKA by probing; `-` = rejected at sniffing); duration_ms (`-` when failing);
# failure: the probe's error code, `unsupported` (rejected at sniffing, not probed) or `-`.
# Files rejected at sniffing with a failure code are probed anyway, as the format their name
# claims, to check the probe's own verdict.
#
# `gen.sh --derived` keeps the committed good files and remakes only what is derived from
# them (the cut and garbled files) and expected.tsv: the good files' bytes depend on the
# encoders this ffmpeg has (without libx264 the clips come out MPEG-4 Part 2), the derived
# ones only on the good files and the seeded noise.
set -euo pipefail
cd "$(dirname "$0")"
derived_only=false
case "${1:-}" in
  --derived) derived_only=true ;;
  "") ;;
  *) echo "usage: $0 [--derived]" >&2; exit 2 ;;
esac

# Bit-exact output (no random stream serials, no encoder version strings): regenerating
# leaves the committed files unchanged where the encoders allow.
ff() { ffmpeg -hide_banner -loglevel error -y "${@:1:$#-1}" -fflags +bitexact "${@: -1}"; }
sine() { echo "sine=f=440:sample_rate=$1:d=3"; }
video() { echo "testsrc=size=64x64:rate=10:d=3"; }

# Prefer H.264 when this ffmpeg has libx264.
if ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264; then
  H264=(-c:v libx264 -preset veryfast -crf 40 -pix_fmt yuv420p)
else
  H264=(-c:v mpeg4 -q:v 20)
fi

if ! $derived_only; then
rm -f ./*.wav ./*.mp3 ./*.flac ./*.ogg ./*.opus ./*.m4a ./*.aac ./*.aif* ./*.mk? ./*.mp4 \
  ./*.mov ./*.webm ./*.avi ./*.txt ./*.bin ./*.png

# --- good audio ----------------------------------------------------------------------------
ff -f lavfi -i "$(sine 8000)" -c:a pcm_s16le sine.wav
ff -f lavfi -i "$(sine 44100)" -c:a libmp3lame -b:a 32k sine_cbr.mp3          # with Info (Xing) + LAME tag
ff -f lavfi -i "$(sine 22050)" -c:a libmp3lame -q:a 9 -write_xing 0 sine_vbr_noxing.mp3
ff -f lavfi -i "$(sine 8000)" -c:a flac sine.flac
ff -f lavfi -i "$(sine 22050)" -c:a libvorbis -q:a 0 sine.ogg
ff -f lavfi -i "$(sine 48000)" -c:a libopus -b:a 16k sine.opus
ff -f lavfi -i "$(sine 44100)" -c:a aac -b:a 32k sine.m4a
ff -f lavfi -i "$(sine 44100)" -c:a aac -b:a 32k sine.aac
ff -f lavfi -i "$(sine 8000)" -c:a pcm_s16be sine.aiff
ff -f lavfi -i "$(sine 48000)" -c:a libopus -b:a 16k sine_opus.mka

# --- good video ----------------------------------------------------------------------------
ff -f lavfi -i "$(video)" -f lavfi -i "$(sine 44100)" "${H264[@]}" -c:a aac -b:a 24k \
  -shortest -movflags +faststart clip.mp4
ff -f lavfi -i "$(video)" -f lavfi -i "$(sine 44100)" "${H264[@]}" -c:a aac -b:a 24k \
  -shortest clip_moov_last.mp4
ff -f lavfi -i "$(video)" "${H264[@]}" clip_video_only.mp4
ff -f lavfi -i "$(video)" -f lavfi -i "$(sine 44100)" "${H264[@]}" -c:a aac -b:a 24k \
  -shortest clip.mov
ff -f lavfi -i "$(video)" -f lavfi -i "$(sine 48000)" "${H264[@]}" -c:a libvorbis -q:a 0 \
  -shortest clip.mkv
ff -f lavfi -i "$(video)" -f lavfi -i "$(sine 48000)" -c:v libvpx -b:v 50k -c:a libopus \
  -b:a 16k -shortest clip.webm

# --- unsupported (rejected at sniffing) ----------------------------------------------------
ff -f lavfi -i "$(video)" -c:v mpeg4 -q:v 20 clip.avi
ff -f lavfi -i "$(sine 8000)" -c:a flac sine_flac_in.ogg    # Ogg FLAC: not a supported Ogg codec
fi

# --- broken --------------------------------------------------------------------------------
cut_at() { head -c "$(( $(stat -c%s "$1") * $3 / 100 ))" "$1" >"$2"; }
cut_at sine.wav truncated_30.wav 30                   # header still claims 3 s
cut_at sine.flac truncated_30.flac 30                 # cut inside the metadata padding
cut_at sine.flac truncated_70.flac 70                 # cut inside a frame; STREAMINFO claims 3 s
cut_at sine.ogg truncated_80.ogg 80                   # Ogg states no length: what is left plays
cut_at clip.mkv truncated_60.mkv 60                   # Duration element still claims 3 s
cut_at sine_cbr.mp3 truncated_30.mp3 30               # Xing still claims 3 s
cut_at clip.mp4 truncated_30_moov_first.mp4 30        # moov intact, samples missing
cut_at clip_moov_last.mp4 truncated_30_moov_last.mp4 30  # no moov at all
# Deterministic noise: seeded white noise as raw bytes.
noise() {
  ff -f lavfi -i "anoisesrc=c=white:seed=$2:sample_rate=8000:d=10" -f s16le noise.tmp
  head -c "$1" noise.tmp
  rm -f noise.tmp
}
# Garbled middle: overwrite the middle third of the frames with noise (same length).
cp sine_cbr.mp3 garbled_middle.mp3
size=$(stat -c%s garbled_middle.mp3)
noise $(( size / 3 )) 7 | dd of=garbled_middle.mp3 bs=1 seek=$(( size / 3 )) conv=notrunc status=none
# Garbled middle of every other supported format: bytes [60 %, 75 %) of a good file (or the
# range given) overwritten with seeded noise (same length). That range lies past every file's
# headers (FLAC's metadata padding ends at 42 % of sine.flac) and before any trailing index
# (the `moov` of clip.mov and sine.m4a, Matroska's Cues): the file still states its full
# duration and ends on intact packets; only its middle is noise.
garble() {  # good file, garbled file, noise seed[, from %, to %]
  local size from
  cp "$1" "$2"
  size=$(stat -c%s "$2")
  from=$(( size * ${4:-60} / 100 ))
  noise $(( size * ${5:-75} / 100 - from )) "$3" |
    dd of="$2" bs=1 seek="$from" conv=notrunc status=none
}
garble sine.wav garbled_middle.wav 21
garble sine.aiff garbled_middle.aiff 22
garble sine.flac garbled_middle.flac 23
# sine.ogg has three audio pages (51 %, 67 %, 84 %): the middle one is garbled. (A damaged
# first audio page fails the headers, `media_unreadable`; the last one states the length.)
garble sine.ogg garbled_middle.ogg 24 68 82
garble sine.opus garbled_middle.opus 25
garble sine.m4a garbled_middle.m4a 26
garble sine.aac garbled_middle.aac 27
garble sine_opus.mka garbled_middle.mka 28
garble clip.mp4 garbled_middle.mp4 29
garble clip.mov garbled_middle.mov 30
garble clip.mkv garbled_middle.mkv 31
garble clip.webm garbled_middle.webm 32
# A valid ID3v2.4 tag (empty, 10-byte header) followed by noise.
{ printf 'ID3\x04\x00\x00\x00\x00\x00\x00'; noise 4000 11; } >id3_then_noise.mp3
printf 'This is not a video, it is a text file with an .mp4 name.\nLine two keeps it over 64 bytes.\n' >text_renamed.mp4
: >zero_length.mp4

# --- expected.tsv --------------------------------------------------------------------------
# Decoded audio duration in ms (true playing time, see above).
audio_ms() {
  local ch rate bytes
  ch=$(ffprobe -v error -select_streams a:0 -show_entries stream=channels -of csv=p=0 "$1")
  rate=$(ffprobe -v error -select_streams a:0 -show_entries stream=sample_rate -of csv=p=0 "$1")
  bytes=$(ffmpeg -hide_banner -loglevel error -i "$1" -map 0:a:0 -f s16le -acodec pcm_s16le - | wc -c)
  echo $(( (bytes * 1000 / (2 * ch) + rate / 2) / rate ))
}
format_ms() {
  ffprobe -v error -show_entries format=duration -of csv=p=0 "$1" |
    awk '{ printf "%d\n", $1 * 1000 + 0.5 }'
}
{
  printf 'file\tformat\tduration_ms\tfailure\n'
  for f in sine.wav sine_cbr.mp3 sine_vbr_noxing.mp3 sine.flac sine.ogg sine.opus \
    sine.aac sine.aiff sine_opus.mka; do
    ext=${f##*.}
    printf '%s\t%s\t%s\t-\n' "$f" "$ext" "$(audio_ms "$f")"
  done
  for f in sine.m4a clip.mp4 clip_moov_last.mp4 clip_video_only.mp4 clip.mov clip.mkv clip.webm; do
    printf '%s\t%s\t%s\t-\n' "$f" "${f##*.}" "$(format_ms "$f")"
  done
  printf 'truncated_30.wav\twav\t-\tmedia_truncated\n'
  printf 'truncated_30.flac\tflac\t-\tmedia_truncated\n'
  printf 'truncated_70.flac\tflac\t-\tmedia_truncated\n'
  printf 'truncated_80.ogg\togg\t%s\t-\n' "$(audio_ms truncated_80.ogg)"
  printf 'truncated_60.mkv\tmkv\t-\tmedia_truncated\n'
  printf 'truncated_30.mp3\tmp3\t-\tmedia_truncated\n'
  printf 'truncated_30_moov_first.mp4\tmp4\t-\tmedia_truncated\n'
  printf 'truncated_30_moov_last.mp4\tmp4\t-\tmedia_truncated\n'
  printf 'garbled_middle.mp3\tmp3\t-\tmedia_corrupt\n'
  # PCM has no framing or checksum to fail: any bytes are valid samples, and the header's
  # sample count still matches the data. Garbled PCM plays its full, exact length.
  for f in garbled_middle.wav garbled_middle.aiff; do
    printf '%s\t%s\t%s\t-\n' "$f" "${f##*.}" "$(audio_ms "$f")"
  done
  for f in garbled_middle.flac garbled_middle.ogg garbled_middle.opus garbled_middle.m4a \
    garbled_middle.aac garbled_middle.mp4 garbled_middle.mov garbled_middle.webm; do
    printf '%s\t%s\t-\tmedia_corrupt\n' "$f" "${f##*.}"
  done
  printf 'garbled_middle.mka\tmkv\t-\tmedia_corrupt\n'
  printf 'garbled_middle.mkv\tmkv\t-\tmedia_corrupt\n'
  printf 'id3_then_noise.mp3\tmp3\t-\tmedia_unreadable\n'
  # Rejected at sniffing; probed anyway (as their name claims) to check the probe's verdict.
  printf 'text_renamed.mp4\t-\t-\tmedia_unreadable\n'
  printf 'zero_length.mp4\t-\t-\tmedia_unreadable\n'
  printf 'clip.avi\t-\t-\tunsupported\n'
  printf 'sine_flac_in.ogg\t-\t-\tunsupported\n'
} >expected.tsv
du -cb ./* | tail -1
