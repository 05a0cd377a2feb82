/** The MQTT packet codec: packet model, encoder, incremental decoder, topic rules. No I/O, no time. */
export * from "./packets";
export { MqttError } from "./errors";
export type { MqttErrorCode } from "./errors";
export { encode, encodePublish } from "./encode";
export { Decoder, DEFAULT_MAX_PACKET_SIZE } from "./decode";
export type { DecoderOptions } from "./decode";
export { checkTopicName, checkTopicFilter, topicMatches } from "./topic";
export { utf8Bytes, decodeUtf8 } from "./utf8";
