"""Live scanning: a video stream (capture card, server device, a clip played as if live) segmented frame by frame.

`region` finds and holds the image region inside a scanner's user interface, `processor` turns one
frame into its overlaid frame through the one inference path, `runner` keeps only the newest frame
waiting (a slow model never builds a backlog), `session` ties them to the frame rate readout, record
and freeze, `sources` provides the streams that need no camera, and `stream` adapts it all to
WebRTC video frames (PyAV / aiortc). Nothing here imports streamlit.
"""
