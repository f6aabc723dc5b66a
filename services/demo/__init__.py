"""The demo: an embedded broker, an uploader and a downloader streaming a generated sample tree."""
