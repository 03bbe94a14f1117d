# The units in systemd/ that NixOS starts, by name. nix/module.nix adds its drop-ins to
# these; tests/nix_flake.rs checks this list against the files in systemd/.
{
  socket = "rtmp-recorder-ingest";
  # ingest's HTTP socket: started only with services.rtmp-recorder.http.enable.
  httpSocket = "rtmp-recorder-http";
  # ingest's RTMPS socket: started only with services.rtmp-recorder.tls.enable.
  tlsSocket = "rtmp-recorder-rtmps";
  services = [
    "rtmp-recorder-ingest"
    "rtmp-recorder-remux"
    "rtmp-recorder-publish"
    "rtmp-recorder-events"
  ];
  # The events .path unit only fires when a stage wrote an event, which it does only with a
  # hook configured (services.rtmp-recorder.hooks).
  paths = [
    "rtmp-recorder-remux"
    "rtmp-recorder-publish"
    "rtmp-recorder-events"
  ];
}
