"""The Cine page's video player: a Streamlit v2 component that keeps playing through reruns.

`st.video` is rebuilt whenever its video changes, so a new smoothing restarted it paused at
0:00, and it tells the script nothing. This player swaps the video in place at the same time
and play state, seeks to the frame the script asks for, and reports the frame it is paused
or seeked on (`frame` in its state), so the page's frame slider and figures follow the video.
"""

from __future__ import annotations

import base64

import streamlit as st

_JS = r"""
export default function (component) {
  const { data, parentElement, setStateValue } = component;
  let root = parentElement.querySelector(".nervseg-player");
  if (!root) {
    root = document.createElement("div");
    root.className = "nervseg-player";
    root.innerHTML = '<video controls loop muted playsinline preload="auto" style="width:100%;display:block"></video>';
    parentElement.appendChild(root);
  }
  const video = root.querySelector("video");
  const s = root.__nervseg || (root.__nervseg = { id: null, url: null, seek: null, reported: null, quiet: false });
  const frameOf = (t) => Math.max(0, Math.min(data.n - 1, Math.floor(t * data.fps + 1e-3)));
  const storeKey = "nervseg-cine-" + data.clip;
  if (!root.__nervsegListening) {
    root.__nervsegListening = true;
    const report = () => {
      sessionStorage.setItem(storeKey, JSON.stringify({ t: video.currentTime, playing: !video.paused }));
      if (s.quiet) { s.quiet = false; return; }  // a seek the script asked for: nothing to report
      clearTimeout(s.timer);  // a pause then a seek: one report, of where the video came to rest
      s.timer = setTimeout(() => {
        const f = frameOf(video.currentTime);
        if (f !== s.reported) { s.reported = f; setStateValue("frame", f); }
      }, 200);
    };
    video.addEventListener("pause", report);
    video.addEventListener("seeked", report);
    video.addEventListener("play", () => sessionStorage.setItem(storeKey, JSON.stringify({ t: video.currentTime, playing: true })));
  }
  if (s.id !== data.id) {  // a new rendering (another smoothing): same time, same play state
    let t = video.currentTime, playing = s.id !== null && !video.paused;
    if (s.id === null) {
      try { const kept = JSON.parse(sessionStorage.getItem(storeKey) || "null"); if (kept) { t = kept.t; playing = kept.playing; } } catch (e) {}
    }
    const bytes = Uint8Array.from(atob(data.mp4), (c) => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: "video/mp4" }));
    if (s.url) URL.revokeObjectURL(s.url);
    s.id = data.id; s.url = url; s.seek = data.seek;
    video.addEventListener("loadedmetadata", () => {
      s.quiet = true;
      video.currentTime = Math.min(t, Math.max(0, video.duration - 1e-3));
      if (playing) video.play().catch(() => {});
    }, { once: true });
    video.src = url;
  } else if (data.seek !== s.seek) {  // the page's frame slider moved: show that frame
    s.seek = data.seek;
    if (data.seek !== null && frameOf(video.currentTime) !== data.seek) {
      s.quiet = true; s.reported = data.seek;
      video.currentTime = (data.seek + 0.5) / data.fps;
    }
  }
}
"""

_player = None


def _component():
    global _player
    if _player is None:
        _player = st.components.v2.component("nervseg_cine_player", js=_JS)
    return _player


def cine_player(key: str, clip_id: str, video_id: str, mp4: bytes, fps: float, n_frames: int,
                seek: int | None) -> int | None:
    """Show the overlay video; returns the frame the viewer paused or seeked on (None before any).

    `clip_id` keeps the play position per clip across page visits; `video_id` names this
    rendering (a new one swaps the video in place); `seek` is the frame the page shows.
    """
    data = {"clip": clip_id, "id": video_id, "mp4": base64.b64encode(mp4).decode("ascii"), "fps": float(fps),
            "n": int(n_frames), "seek": seek}
    result = _component()(key=key, data=data, default={"frame": None}, on_frame_change=lambda: None)
    frame = result.frame
    return int(frame) if frame is not None else None
