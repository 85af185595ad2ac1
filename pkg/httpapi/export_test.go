package httpapi

// DecodeChatForBench exposes the request decoder to the external benchmarks.
var DecodeChatForBench = decodeChat
