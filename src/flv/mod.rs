//! FLV: tag reader, writer and the audio/video tag headers (legacy and enhanced RTMP).
