# The EC2 appliance: NixOS on Amazon's virtual hardware with the recorder enabled and RTMP
# open. Used by nixosConfigurations.recorder (deploy to a running instance) and, through
# nixpkgs' image builder (system.build.images.amazon), by packages.<system>.ami.
#
# No bucket is named here: an AMI is shared by every deployment. Each instance gets its
# settings from /etc/rtmp-recorder/recorder.env (the units read it when it exists), e.g.
# written by EC2 user data, and its credentials from the instance role through the AWS SDK's
# default chain (instance metadata). Without S3_BUCKET, MP4s stay in
# /var/lib/rtmp-recorder/published.
{ modulesPath, ... }:
{
  imports = [ "${modulesPath}/virtualisation/amazon-image.nix" ];

  services.rtmp-recorder = {
    enable = true;
    listenAddresses = [ "1935" ];
    openFirewall = true;
  };

  system.stateVersion = "26.05";
}
