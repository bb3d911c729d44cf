"""Nodes that users run: speech (resample, vad, asr, responder, tts), video and files.

Their short names are in ``noded.contract.registry``."""
