"""Audio files in through libsndfile (noded.wavfile.read_audio, nodectl's mediafiles): every
WAV encoding sox writes (PCM 8 to 32 bit, float, WAVE_FORMAT_EXTENSIBLE), FLAC and OGG;
resampling and downmixing for a node that asks; errors that name the file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from noded.ctl.mediafiles import AudioFormat, MediaError, conform, read_input, wanted_format
from noded.wavfile import pcm16, read_audio, write_wav

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox makes the files (packaging/dev-env)")

RATE, SECONDS = 22050, 0.5
FRAMES = int(RATE * SECONDS)


def sox(path: Path, *encoding: str, channels: int = 2, rate: int = RATE) -> Path:
    """A 440 Hz (left) and 660 Hz (right) tone at -6 dBFS, in the format ``encoding``
    and ``path``'s suffix say."""
    synth = ["synth", str(SECONDS), "sine", "440", "sine", "660", "sine", "880"][: 3 + 2 * channels]
    cmd = ["sox", "-n", "-r", str(rate), "-c", str(channels), *encoding, str(path), *synth, "gain", "-6"]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = sox(tmp_path_factory.mktemp("ref") / "ref.wav", "-b", "64", "-e", "floating-point")
    samples, rate = read_audio(path)
    assert rate == RATE and samples.shape == (FRAMES, 2)
    return samples


def format_tag(path: Path) -> int:
    """The WAV header's format tag: 1 PCM, 3 IEEE float, 0xFFFE EXTENSIBLE."""
    return int.from_bytes(path.read_bytes()[20:22], "little")


@pytest.mark.parametrize(
    "name,encoding,tag,tolerance",
    [
        ("u8.wav", ("-b", "8", "-e", "unsigned-integer"), 1, 2 / 2**7),
        ("s16.wav", ("-b", "16", "-e", "signed-integer"), 1, 2 / 2**15),
        ("s24.wav", ("-b", "24", "-e", "signed-integer"), 0xFFFE, 2 / 2**23),
        ("s32.wav", ("-b", "32", "-e", "signed-integer"), 0xFFFE, 1e-6),
        ("f32.wav", ("-b", "32", "-e", "floating-point"), 3, 1e-6),
        ("f64.wav", ("-b", "64", "-e", "floating-point"), 3, 1e-6),
        ("s16.flac", ("-b", "16"), None, 2 / 2**15),
        ("s24.flac", ("-b", "24"), None, 2 / 2**23),
    ],
)
def test_every_lossless_encoding_reads_as_the_same_samples(
    tmp_path: Path, reference: np.ndarray, name: str, encoding: tuple[str, ...], tag: int | None, tolerance: float
) -> None:
    path = sox(tmp_path / name, *encoding)
    if tag is not None:
        assert format_tag(path) == tag  # what sox wrote is the case this test is about
    samples, rate = read_audio(path)
    assert rate == RATE and samples.dtype == np.float32 and samples.shape == (FRAMES, 2)
    assert np.max(np.abs(samples - reference)) <= tolerance


def test_wave_format_extensible_with_more_than_two_channels(tmp_path: Path) -> None:
    path = sox(tmp_path / "three.wav", "-b", "16", channels=3)
    assert format_tag(path) == 0xFFFE
    samples, rate = read_audio(path)
    assert rate == RATE and samples.shape == (FRAMES, 3)


def test_ogg_vorbis_reads_as_a_close_copy(tmp_path: Path, reference: np.ndarray) -> None:
    samples, rate = read_audio(sox(tmp_path / "tone.ogg"))
    assert rate == RATE and samples.shape[1] == 2
    assert abs(samples.shape[0] - FRAMES) <= RATE // 100  # lossy: the length within 10 ms
    n = min(len(samples), FRAMES)
    error = np.sqrt(np.mean((samples[:n] - reference[:n]) ** 2))
    assert error < 0.02, error  # a tone at 0.5 amplitude, rms 0.35


def test_read_input_chunks_any_audio_file(tmp_path: Path) -> None:
    data = read_input(sox(tmp_path / "tone.flac", "-b", "24"), chunk_ms=100)
    assert len(data.chunks) == 5 and data.chunks[0].fields == {"sample_rate": RATE, "channels": 2}
    assert abs(data.duration - SECONDS) < 1e-9


@pytest.mark.parametrize(
    "name,content,what",
    [
        ("junk.flac", b"fLaC but not really" * 10, "not audio that libsndfile can read"),
        ("junk.wav", b"RIFF\x00\x00\x00\x00WAVEjunk", "not audio that libsndfile can read"),
        ("text.ogg", b"hello\n", "not audio that libsndfile can read"),
        ("empty.wav", b"", "the file is empty"),
    ],
)
def test_unreadable_audio_names_the_file_and_the_problem(tmp_path: Path, name: str, content: bytes, what: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=what) as info:
        read_input(path)
    assert str(path) in info.value.message and info.value.hint


def test_a_truncated_wav_is_called_truncated(tmp_path: Path) -> None:
    path = sox(tmp_path / "cut.wav", "-b", "16")
    path.write_bytes(path.read_bytes()[: 44 + 1000])  # the header promises 11025 frames
    with pytest.raises(MediaError, match="truncated") as info:
        read_input(path)
    assert str(path) in info.value.message


def test_a_header_without_frames_holds_no_audio(tmp_path: Path) -> None:
    path = sox(tmp_path / "none.wav", "-b", "16")
    path.write_bytes(path.read_bytes()[:44])
    with pytest.raises(MediaError, match="holds no audio|truncated"):
        read_input(path)


def test_conform_downmixes_and_resamples_for_a_node_that_asks(tmp_path: Path) -> None:
    pytest.importorskip("soxr")
    data = read_input(sox(tmp_path / "three.wav", "-b", "24", channels=3, rate=44100), chunk_ms=20)
    out = conform(data, AudioFormat(16000, 1), "node vad (vad)")
    samples, rate = out.audio or (None, 0)
    assert rate == 16000 and samples is not None and samples.shape[1] == 1
    assert abs(len(samples) - 8000) <= 2
    assert out.chunks[0].fields == {"sample_rate": 16000, "channels": 1} and len(out.chunks) == 25
    # The mean of the three tones: each of 440, 660 and 880 Hz is a third of the mix.
    spectrum = np.abs(np.fft.rfft(samples[:, 0]))
    freqs = np.fft.rfftfreq(len(samples), 1 / 16000)
    peaks = sorted(freqs[np.argsort(spectrum)[-3:]].round())
    assert peaks == [440.0, 660.0, 880.0], peaks
    assert conform(data, None) is data  # nobody asks: the file as it is
    assert conform(out, AudioFormat(16000, 1)) is out  # already so


def test_the_built_in_nodes_that_take_16_khz_mono_ask_for_it() -> None:
    assert wanted_format([("v", "vad")]) == (AudioFormat(16000, 1), "node v (vad)")
    assert wanted_format([("a", "asr"), ("p", "passthrough")]) == (AudioFormat(16000, 1), "node a (asr)")
    assert wanted_format([("p", "passthrough"), ("r", "resample"), ("u", "my.mod:Node")]) == (None, "")


def test_a_cut_flac_is_called_damaged_or_truncated(tmp_path: Path) -> None:
    path = sox(tmp_path / "cut.flac", "-b", "16")
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(MediaError, match="damaged or truncated|truncated") as info:
        read_input(path)
    assert str(path) in info.value.message


def test_16_bit_pcm_read_and_written_back_is_the_same_pcm(tmp_path: Path) -> None:
    src, dst = sox(tmp_path / "in.wav", "-b", "16"), tmp_path / "out.wav"
    samples, rate = read_audio(src)
    write_wav(dst, samples, rate)
    assert dst.read_bytes()[44:] == src.read_bytes()[-len(dst.read_bytes()[44:]) :]
    back, _ = read_audio(dst)
    assert np.array_equal(back, samples)
    assert pcm16(np.array([1.5, 1.0, -1.0, -2.0])).tolist() == [32767, 32767, -32768, -32768]
