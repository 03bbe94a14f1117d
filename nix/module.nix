# services.rtmp-recorder: the NixOS side of the appliance.
#
# The units themselves come from the package (systemd/ in the repository, installed by
# nix/package.nix), the same files the .deb and .rpm ship. This module only adds what NixOS
# must decide: which units start, the socket's listen addresses, the environment the binary
# reads its settings from, the system user and the firewall. So the units cannot drift apart
# between NixOS and the other packages.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    literalExpression
    ;

  cfg = config.services.rtmp-recorder;

  units = import ./units.nix;

  # The binary reads `90`, `90s`, `5m`, `1h30m`, `250ms`, `2d`; a bare number is seconds.
  duration = types.either types.ints.unsigned (types.strMatching "([0-9]+(ms|s|m|min|h|d)?)+");
  # `1000M`, `2G`, `512K` or bytes, binary multiples.
  size = types.either types.ints.positive (types.strMatching "[0-9]+[KMGTBkmgtb]?");
  # A size, or a share of the file system: `5%`, `0.5%`.
  sizeOrShare = types.either size (types.strMatching "[0-9]+([.][0-9]{1,2})?%");
  # Files read at run time by the service: a string, never a Nix path, so the contents are
  # not copied into the world-readable Nix store.
  runtimeFile = types.pathWith {
    inStore = false;
    absolute = true;
  };
  # What systemd's ListenStream= takes for TCP: a port, or an address and a port.
  listenAddress = types.strMatching "([0-9]+|[0-9.]+:[0-9]+|[[][0-9a-zA-Z:.%]+[]]:[0-9]+)";

  portOf = address: lib.toInt (lib.last (lib.splitString ":" address));

  # Each typed option and the variables of the binary (and of the seed deployment) it sets.
  # extraEnvironment must not set them again: two sources for one setting is a contradiction.
  claimed = {
    CHUNK_DURATION = "chunkDuration";
    CHUNK_DURATION_MINUTES = "chunkDuration";
    ALIGN_CHUNKS = "alignChunks";
    RECONNECT_GRACE = "reconnectGrace";
    NODE_ID = "nodeId";
    MAX_CHUNK_SIZE = "maxChunkSize";
    MAX_CHUNK_FRAMES = "maxChunkFrames";
    MIN_FREE_DISK = "minFreeDisk";
    ALLOWED_KEYS_FILE = "allowedKeysFile";
    ALLOWED_APPS = "allowedApps";
    PUBLISH_SECRET_FILE = "publishSecretFile";
    PUBLISH_HOOK_URL = "publishHook.url";
    PUBLISH_HOOK_TIMEOUT = "publishHook.timeout";
    HOOK_COMMAND = "hooks.command";
    WEBHOOK_URL = "hooks.webhook";
    HOOK_TIMEOUT = "hooks.timeout";
    PUBLISH_KEEP_UPLOADED_FOR = "keepUploadedFor";
    FLV_MAX_AGE_SECONDS = "keepFlvFor";
    S3_BUCKET = "s3.bucket";
    S3_PREFIX = "s3.prefix";
    AWS_REGION = "s3.region";
    AWS_ENDPOINT_URL_S3 = "s3.endpoint";
    S3_ENDPOINT_URL = "s3.endpoint";
    PUBLIC_ACL = "s3.publicAcl";
    PUBLISH_KEY_TEMPLATE = "keyTemplate";
    RTMP_RECORDER_LOG = "logLevel";
    RTMP_LISTEN = "listenAddresses";
    HTTP_LISTEN = "http.listenAddresses";
    TLS_LISTEN = "tls.listenAddresses";
    TLS_CERT_FILE = "tls.certFile";
    TLS_KEY_FILE = "tls.keyFile";
    RTMP_RECORDER_STATE_DIR = "(fixed: the .path units watch /var/lib/rtmp-recorder)";
    RECORDINGS_DIR = "(fixed: the .path units watch /var/lib/rtmp-recorder)";
  };
  secretVariables = [
    "AWS_SECRET_ACCESS_KEY"
    "AWS_SESSION_TOKEN"
  ];

  str = v: if builtins.isBool v then lib.boolToString v else toString v;

  environment =
    lib.filterAttrs (_: v: v != null) {
      CHUNK_DURATION = cfg.chunkDuration;
      ALIGN_CHUNKS = if cfg.alignChunks then true else null;
      RECONNECT_GRACE = cfg.reconnectGrace;
      NODE_ID = cfg.nodeId;
      MAX_CHUNK_SIZE = cfg.maxChunkSize;
      MAX_CHUNK_FRAMES = cfg.maxChunkFrames;
      MIN_FREE_DISK = cfg.minFreeDisk;
      ALLOWED_KEYS_FILE = cfg.allowedKeysFile;
      ALLOWED_APPS = if cfg.allowedApps == [ ] then null else lib.concatStringsSep "," cfg.allowedApps;
      PUBLISH_SECRET_FILE = cfg.publishSecretFile;
      PUBLISH_HOOK_URL = cfg.publishHook.url;
      PUBLISH_HOOK_TIMEOUT = cfg.publishHook.timeout;
      HOOK_COMMAND = cfg.hooks.command;
      WEBHOOK_URL = cfg.hooks.webhook;
      HOOK_TIMEOUT = cfg.hooks.timeout;
      PUBLISH_KEEP_UPLOADED_FOR = cfg.keepUploadedFor;
      FLV_MAX_AGE_SECONDS = cfg.keepFlvFor;
      S3_BUCKET = cfg.s3.bucket;
      S3_PREFIX = cfg.s3.prefix;
      AWS_REGION = cfg.s3.region;
      AWS_ENDPOINT_URL_S3 = cfg.s3.endpoint;
      PUBLIC_ACL = if cfg.s3.publicAcl then true else null;
      PUBLISH_KEY_TEMPLATE = cfg.keyTemplate;
      RTMP_RECORDER_LOG = cfg.logLevel;
      TLS_CERT_FILE = if cfg.tls.enable then cfg.tls.certFile else null;
      TLS_KEY_FILE = if cfg.tls.enable then cfg.tls.keyFile else null;
    }
    // cfg.extraEnvironment;

  doubled = lib.attrNames (lib.intersectAttrs claimed cfg.extraEnvironment);
  leaked = lib.filter (v: cfg.extraEnvironment ? ${v}) secretVariables;
in
{
  options.services.rtmp-recorder = {
    enable = mkEnableOption "rtmp-recorder: record RTMP streams into chunks, remux them to MP4 and upload them to S3";

    package = mkOption {
      type = types.package;
      default = pkgs.rtmp-recorder or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.rtmp-recorder or (pkgs.callPackage ./package.nix { })";
      example = literalExpression "inputs.rtmp-recorder.packages.\${pkgs.stdenv.hostPlatform.system}.default";
      description = "The rtmp-recorder package; its units are the ones started.";
    };

    listenAddresses = mkOption {
      type = types.nonEmptyListOf listenAddress;
      default = [ "1935" ];
      example = [
        "0.0.0.0:1935"
        "[::1]:1935"
      ];
      description = ''
        Where rtmp-recorder-ingest.socket accepts RTMP publishers (systemd's `ListenStream=`):
        a port (all addresses, IPv4 and IPv6), or an address and a port. Replaces the unit's
        own list.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Open the TCP ports of {option}`services.rtmp-recorder.listenAddresses` (and of {option}`services.rtmp-recorder.http.listenAddresses` when HTTP is on, {option}`services.rtmp-recorder.tls.listenAddresses` when RTMPS is on) in the firewall.";
    };

    http = {
      enable = mkEnableOption "ingest's HTTP endpoints on rtmp-recorder-http.socket: /healthz, /metrics and read-only /recordings/ (readable by anyone who reaches the port)";

      listenAddresses = mkOption {
        type = types.nonEmptyListOf listenAddress;
        default = [ "8080" ];
        example = [ "127.0.0.1:8080" ];
        description = ''
          Where rtmp-recorder-http.socket accepts HTTP (systemd's `ListenStream=`): a port, or
          an address and a port. Replaces the unit's own list.
        '';
      };
    };

    tls = {
      enable = mkEnableOption "RTMPS (RTMP over TLS) on rtmp-recorder-rtmps.socket, beside plain RTMP; needs {option}`services.rtmp-recorder.tls.certFile` and {option}`services.rtmp-recorder.tls.keyFile`";

      listenAddresses = mkOption {
        type = types.nonEmptyListOf listenAddress;
        default = [ "1936" ];
        example = [ "443" ];
        description = ''
          Where rtmp-recorder-rtmps.socket accepts RTMPS publishers (systemd's `ListenStream=`):
          a port, or an address and a port. Replaces the unit's own list (1936).
        '';
      };

      certFile = mkOption {
        type = types.nullOr runtimeFile;
        default = null;
        example = "/var/lib/acme/rtmp.example.org/fullchain.pem";
        description = ''
          PEM certificate chain for RTMPS, end-entity certificate first (`TLS_CERT_FILE`).
          Read by the service user at run time, and again whenever it changes: a renewed
          certificate is served to the next connection without a restart. With
          `security.acme`, set `security.acme.certs.<name>.group = "rtmp-recorder"` so the
          service can read it. Not passed with `LoadCredential=`: systemd copies credentials
          once at start, so a renewal would need a restart, which ends every live stream.
        '';
      };

      keyFile = mkOption {
        type = types.nullOr runtimeFile;
        default = null;
        example = "/var/lib/acme/rtmp.example.org/key.pem";
        description = ''
          PEM private key of {option}`services.rtmp-recorder.tls.certFile` (`TLS_KEY_FILE`);
          a secret: a path read at run time by the service user, never a file in the Nix
          store. Read again whenever it changes.
        '';
      };
    };

    chunkDuration = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "10m";
      description = ''
        Target chunk length in media time (`CHUNK_DURATION`): a chunk ends at the first
        keyframe at or after it. `null` keeps the binary's default, 5 minutes.
      '';
    };

    alignChunks = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        End chunks at multiples of {option}`services.rtmp-recorder.chunkDuration` on the UTC
        clock (`ALIGN_CHUNKS`): at the first keyframe at or after :00, :05, ... for 5-minute
        chunks, so the chunks of every stream line up; a stream's first chunk is shorter.
        `false`: each chunk lasts `chunkDuration` of media time.
      '';
    };

    reconnectGrace = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "2m";
      description = ''
        A publisher that publishes the same stream again within this time of its last frame
        continues the recording (`RECONNECT_GRACE`), also across a restart of ingest: the
        sequence goes on and the next chunk's manifest records the gap. `"0"` turns it off
        (every publish starts at sequence 1); `null` keeps the binary's default, 30 seconds.
      '';
    };

    nodeId = mkOption {
      type = types.nullOr (types.strMatching "[A-Za-z0-9][A-Za-z0-9.-]{0,31}");
      default = null;
      example = "recorder-eu-1";
      description = ''
        This node's identity (`NODE_ID`), at the end of every chunk name, in each manifest's
        `node` and in the key template's `{node}`, so several nodes can record streams of
        the same names into one bucket. `null` keeps the binary's default: on EC2 the
        instance id, else the hostname.
      '';
    };

    maxChunkSize = mkOption {
      type = types.nullOr size;
      default = null;
      example = "2G";
      description = ''
        Split at the next keyframe once a chunk reaches this size (`MAX_CHUNK_SIZE`).
        `null` keeps the binary's default, `1000M`.
      '';
    };

    maxChunkFrames = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 100000;
      description = ''
        Split at the next keyframe once a chunk holds this many frames, audio and video
        (`MAX_CHUNK_FRAMES`); twice this (or twice `maxChunkSize`) splits even without a keyframe.
        `null` keeps the binary's default, `400000`.
      '';
    };

    minFreeDisk = mkOption {
      type = types.nullOr sizeOrShare;
      default = null;
      example = "5%";
      description = ''
        Below this much free space on /var/lib/rtmp-recorder (bytes like `2G`, or a share
        like `5%`), ingest deletes uploaded recordings from archive/ (oldest first) and, if
        that is not enough, refuses new publishes; live streams keep recording
        (`MIN_FREE_DISK`). `null` keeps the binary's default, `512M`.
      '';
    };

    allowedKeysFile = mkOption {
      type = types.nullOr runtimeFile;
      default = null;
      example = "/run/secrets/rtmp-recorder-keys";
      description = ''
        File of stream keys allowed to publish, one `KEY [LABEL]` per line
        (`ALLOWED_KEYS_FILE`). Stream keys are secrets, so this is a path read at run time by
        the service user, never a file in the Nix store. `null`: any key may publish.
      '';
    };

    allowedApps = mkOption {
      type = types.listOf (types.strMatching "[^,?/]+");
      default = [ ];
      example = [
        "live"
        "studio"
      ];
      description = ''
        Apps that may be published to (`ALLOWED_APPS`); a publish to another app is refused
        whatever key or token it brings. `[ ]`: any app.
      '';
    };

    publishSecretFile = mkOption {
      type = types.nullOr runtimeFile;
      default = null;
      example = "/run/secrets/rtmp-recorder-publish-secret";
      description = ''
        File holding the secret of signed publish tokens (`PUBLISH_SECRET_FILE`, at least 16
        bytes): a publisher appends `?exp=UNIX&sig=HEX` to its stream name and is admitted
        until `exp`. Issue URLs with `rtmp-recorder token APP/STREAM --valid-for 1h --secret
        FILE`. A path read at run time by the service user, never a file in the Nix store.
        `null`: no tokens.
      '';
    };

    publishHook = {
      url = mkOption {
        type = types.nullOr (types.strMatching "http://.+");
        default = null;
        example = "http://127.0.0.1:8080/on_publish";
        description = ''
          Ask this URL (POST, JSON) about every publish no allowed key or token admits
          (`PUBLISH_HOOK_URL`); a 2xx answer admits, anything else or no answer refuses. Setting
          it gives ingest a network to dial out on (its unit has none otherwise). `null`: no hook.
        '';
      };

      timeout = mkOption {
        type = types.nullOr duration;
        default = null;
        example = "2s";
        description = ''
          How long the publish hook may take before the publish is refused
          (`PUBLISH_HOOK_TIMEOUT`). `null` keeps the binary's default, `3s`.
        '';
      };
    };

    hooks = {
      command = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/rtmp-recorder/on-event.sh";
        description = ''
          Run this shell command (`sh -c`) for every event (stream started or stopped, chunk
          recorded, uploaded or failed) with the event's JSON on stdin (`HOOK_COMMAND`); exit
          status 0 means delivered, anything else is retried with backoff. It runs as the
          rtmp-recorder user inside rtmp-recorder-events.service's sandbox. The command line is
          in the Nix store: it must not hold secrets. `null`: no command.
        '';
      };

      webhook = mkOption {
        type = types.nullOr (types.strMatching "http://.+");
        default = null;
        example = "http://127.0.0.1:9000/recorder-events";
        description = ''
          POST every event's JSON to this URL (`WEBHOOK_URL`); a 2xx answer means delivered,
          anything else (or no answer within {option}`services.rtmp-recorder.hooks.timeout`)
          is retried with backoff. Recording, remux and upload never wait on it: events are
          queued in /var/lib/rtmp-recorder/events and delivered by rtmp-recorder-events.service.
          `null`: no webhook.
        '';
      };

      timeout = mkOption {
        type = types.nullOr duration;
        default = null;
        example = "30s";
        description = ''
          How long one delivery attempt (the command's run, the POST) may take before it fails
          and is retried (`HOOK_TIMEOUT`). `null` keeps the binary's default, `10s`.
        '';
      };
    };

    keepUploadedFor = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "7d";
      description = ''
        Delete archived MP4s this long after their verified upload
        (`PUBLISH_KEEP_UPLOADED_FOR`). `null` keeps the binary's default, 1 day.
      '';
    };

    keepFlvFor = mkOption {
      type = types.nullOr duration;
      default = null;
      example = "1d";
      description = ''
        Delete archived FLV chunks this long after their MP4 was made
        (`FLV_MAX_AGE_SECONDS`; `0` keeps them). `null` keeps the binary's default, `0`.
      '';
    };

    s3 = {
      bucket = mkOption {
        type = types.nullOr (types.strMatching "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");
        default = null;
        example = "my-recordings";
        description = ''
          S3 bucket the MP4s and manifests go to (`S3_BUCKET`). `null`: they go to
          /var/lib/rtmp-recorder/published instead. Credentials come from the default AWS
          chain: {option}`services.rtmp-recorder.environmentFile`, or the EC2 instance role.
        '';
      };

      prefix = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "studio-a";
        description = "Key prefix in the bucket (`S3_PREFIX`). `null`: none.";
      };

      region = mkOption {
        type = types.nullOr (types.strMatching "[a-z0-9-]+");
        default = null;
        example = "eu-central-1";
        description = "Region of the bucket (`AWS_REGION`). `null` keeps the binary's default, `us-west-2`.";
      };

      endpoint = mkOption {
        type = types.nullOr (types.strMatching "https?://.+");
        default = null;
        example = "http://127.0.0.1:9000";
        description = ''
          An S3-compatible store (MinIO, Garage, R2, Ceph) instead of AWS
          (`AWS_ENDPOINT_URL_S3`), addressed path-style. `null`: AWS.
        '';
      };

      publicAcl = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Give uploaded objects the canned ACL `public-read` (`PUBLIC_ACL`). The bucket must
          allow ACLs (S3 Object Ownership other than "bucket owner enforced").
        '';
      };
    };

    keyTemplate = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "{prefix}/{stream}/{YYYY}-{MM}-{DD}/{file}";
      description = ''
        Object key layout (`PUBLISH_KEY_TEMPLATE`); placeholders `{prefix}` `{app}` `{stream}`
        `{node}` `{YYYY}` `{MM}` `{DD}` `{HH}` `{file}` `{stem}`. `null` keeps the binary's default,
        `{prefix}/{app}/{stream}/{YYYY}/{MM}/{DD}/{file}`.
      '';
    };

    logLevel = mkOption {
      type = types.nullOr (
        types.enum [
          "error"
          "warn"
          "info"
          "debug"
          "trace"
        ]
      );
      default = null;
      example = "debug";
      description = "Log level (`RTMP_RECORDER_LOG`). `null` keeps the binary's default, `info`.";
    };

    environmentFile = mkOption {
      type = types.nullOr runtimeFile;
      default = null;
      example = "/run/secrets/rtmp-recorder.env";
      description = ''
        A file of `NAME=value` lines read by every rtmp-recorder service at start, for secrets
        such as `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (not needed on EC2 with an
        instance role). Only its path is in the Nix store. Values in it override the options
        here. The units also read /etc/rtmp-recorder/recorder.env when it exists.
      '';
    };

    extraEnvironment = mkOption {
      type = types.attrsOf (
        types.oneOf [
          types.str
          types.int
          types.bool
        ]
      );
      default = { };
      example = {
        IDLE_TIMEOUT = "1m";
        MAX_CONNECTIONS = 64;
        PUBLISH_PART_CONCURRENCY = 8;
      };
      description = ''
        Further environment variables for every rtmp-recorder service, for the settings
        without an option of their own (`rtmp-recorder ingest --help`, `remux --help`,
        `publish --help` list them with their variables). They end up in the Nix store: put
        secrets in {option}`services.rtmp-recorder.environmentFile` instead.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.tls.enable -> cfg.tls.certFile != null && cfg.tls.keyFile != null;
        message = "services.rtmp-recorder.tls.enable needs tls.certFile and tls.keyFile (PEM files the rtmp-recorder user can read): ingest refuses to start with an RTMPS socket and no certificate.";
      }
      {
        assertion = cfg.s3.publicAcl -> cfg.s3.bucket != null;
        message = "services.rtmp-recorder.s3.publicAcl is set but there is no s3.bucket: local files have no ACL. Set s3.bucket or drop publicAcl.";
      }
      {
        assertion = cfg.s3.endpoint != null -> cfg.s3.bucket != null;
        message = "services.rtmp-recorder.s3.endpoint is set but there is no s3.bucket to upload to. Set s3.bucket or drop the endpoint.";
      }
      {
        assertion = cfg.s3.prefix != null -> cfg.s3.bucket != null;
        message = "services.rtmp-recorder.s3.prefix is set but there is no s3.bucket. Set s3.bucket or drop the prefix.";
      }
      {
        assertion = cfg.s3.region != null -> cfg.s3.bucket != null;
        message = "services.rtmp-recorder.s3.region is set but there is no s3.bucket. Set s3.bucket or drop the region.";
      }
      {
        assertion = cfg.extraEnvironment ? DESTINATION -> cfg.s3.bucket == null;
        message = "services.rtmp-recorder: extraEnvironment.DESTINATION and s3.bucket both name where MP4s go. Keep one.";
      }
      {
        assertion = cfg.publishHook.timeout != null -> cfg.publishHook.url != null;
        message = "services.rtmp-recorder.publishHook.timeout is set but there is no publishHook.url. Set the URL or drop the timeout.";
      }
      {
        assertion = cfg.hooks.timeout != null -> (cfg.hooks.command != null || cfg.hooks.webhook != null);
        message = "services.rtmp-recorder.hooks.timeout is set but there is no hooks.command or hooks.webhook. Set one or drop the timeout.";
      }
      {
        assertion = doubled == [ ];
        message = "services.rtmp-recorder.extraEnvironment sets ${lib.concatStringsSep ", " doubled}, which ${
          lib.concatStringsSep ", " (lib.unique (map (v: claimed.${v}) doubled))
        } already controls. Use the option.";
      }
      {
        assertion = leaked == [ ];
        message = "services.rtmp-recorder.extraEnvironment holds ${lib.concatStringsSep ", " leaked}, which would be readable by anyone in the Nix store. Put it in services.rtmp-recorder.environmentFile.";
      }
    ];

    # The units (and their hardening) come from the package; what follows are drop-ins.
    systemd.packages = [ cfg.package ];
    systemd.tmpfiles.packages = [ cfg.package ];

    systemd.sockets.${units.socket} = {
      wantedBy = [ "sockets.target" ];
      # The empty entry resets the unit's own ListenStream= list.
      listenStreams = [ "" ] ++ cfg.listenAddresses;
    };

    systemd.sockets.${units.httpSocket} = mkIf cfg.http.enable {
      wantedBy = [ "sockets.target" ];
      listenStreams = [ "" ] ++ cfg.http.listenAddresses;
    };

    systemd.sockets.${units.tlsSocket} = mkIf cfg.tls.enable {
      wantedBy = [ "sockets.target" ];
      listenStreams = [ "" ] ++ cfg.tls.listenAddresses;
    };

    systemd.paths = lib.genAttrs units.paths (_: {
      wantedBy = [ "paths.target" ];
    });

    systemd.services = lib.genAttrs units.services (name: {
      environment = lib.mapAttrs (_: str) environment;
      serviceConfig = {
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
      }
      # The ingest unit has no network of its own (its sockets come from systemd); the publish
      # hook needs one to dial out. The empty IPAddressDeny= resets the unit's `any`.
      // lib.optionalAttrs (name == units.socket && cfg.publishHook.url != null) {
        PrivateNetwork = false;
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        IPAddressDeny = "";
      };
    });

    # Matches systemd/rtmp-recorder.sysusers: NixOS creates users from these options.
    users.users.rtmp-recorder = {
      isSystemUser = true;
      group = "rtmp-recorder";
      description = "rtmp-recorder stages";
    };
    users.groups.rtmp-recorder = { };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall (
      lib.unique (
        map portOf (
          cfg.listenAddresses
          ++ lib.optionals cfg.http.enable cfg.http.listenAddresses
          ++ lib.optionals cfg.tls.enable cfg.tls.listenAddresses
        )
      )
    );
  };
}
