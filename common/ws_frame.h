/*
 * ws_frame.h - RFC 6455 frame codec with no I/O.
 *
 * The parser is fed arbitrary chunks of a byte stream (one byte at a time
 * works) and assembles complete messages: it enforces every framing rule
 * of RFC 6455 section 5 (RSV bits, opcodes, masking, minimal length
 * encoding, a 64-bit length with its top bit set, control frames <= 125
 * bytes and never fragmented, continuation rules, maximum message size),
 * validates
 * text as UTF-8 incrementally (unless the message is compressed, which the
 * caller validates after inflating), and validates close frame payloads
 * (section 7.4 codes, UTF-8 reason).  Errors are reported as the close
 * code the server must send.
 *
 * The serializer writes frames into caller-provided memory: unmasked server
 * frames, and masked client frames for tests and the benchmark client.
 */
#ifndef PARLEY_WS_FRAME_H
#define PARLEY_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "utf8.h"

typedef enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA
} ws_opcode_t;

/* Close codes (RFC 6455 section 7.4.1) used by Parley. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent: "no code in the close frame" */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent: "TCP closed without close" */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_RESTART = 1012,
    WS_CLOSE_TRY_AGAIN = 1013
};

#define WS_MAX_HEADER 14   /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL 125 /* payload of a control frame */
#define WS_RSV1 0x40       /* per-message compressed (RFC 7692) */

typedef struct {
    size_t max_message;  /* largest assembled message payload, bytes */
    bool require_mask;   /* server side: every client frame must be masked */
    bool reject_mask;    /* client side: server frames must not be masked */
    uint8_t allowed_rsv; /* RSV bits allowed on a message's first frame
                            (WS_RSV1 once permessage-deflate is agreed) */
} ws_parser_config_t;

/* A complete message or control frame handed out by ws_parser_feed(). */
typedef struct {
    ws_opcode_t opcode;  /* TEXT, BINARY, CLOSE, PING or PONG */
    bool compressed;     /* RSV1 was set on the first frame */
    const uint8_t *data; /* unmasked payload; borrowed from the parser
                            until the next ws_parser_feed() call */
    size_t len;
    uint16_t close_code;      /* CLOSE only: code, or WS_CLOSE_NO_STATUS */
    const char *close_reason; /* CLOSE only: UTF-8, len close_reason_len */
    size_t close_reason_len;
} ws_message_t;

typedef struct {
    ws_parser_config_t cfg;
    /* frame header being read */
    uint8_t hdr[WS_MAX_HEADER];
    size_t hdr_have;
    size_t hdr_need;
    /* current frame */
    uint8_t opcode;
    bool fin;
    uint8_t rsv;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    uint64_t payload_have;
    /* message being assembled from data frames */
    bool in_message;
    uint8_t msg_opcode;
    bool msg_compressed;
    uint8_t *msg; /* owned, grows up to cfg.max_message */
    size_t msg_len;
    size_t msg_cap;
    utf8_state_t utf8;
    /* control frame payload */
    uint8_t ctl[WS_MAX_CONTROL];
    size_t ctl_len;
    /* error */
    uint16_t error_code; /* close code to send after an error, else 0 */
    const char *error;   /* static text for logs and the close reason */
} ws_parser_t;

/* Initializes p with a copy of cfg.  Never fails. */
void ws_parser_init(ws_parser_t *p, const ws_parser_config_t *cfg);

/* Releases the message buffer; p may be initialized again afterwards. */
void ws_parser_free(ws_parser_t *p);

/* True when p holds nothing of the stream: no frame or fragmented message
 * is partly read, and no error.  Then a fresh parser with the same config
 * would go on exactly as p (a server can keep parsers only for connections
 * in the middle of a frame).  A parser holds no pointer into itself, so it
 * may also be moved with memcpy at any point between feeds. */
bool ws_parser_idle(const ws_parser_t *p);

/*
 * Consumes bytes from in[0..len) until one message or control frame is
 * complete or the input is used up.  Returns the number of bytes consumed
 * (call again with the rest), and sets out->opcode to the completed
 * message's opcode, or to WS_OP_CONT when nothing is complete yet.  On a
 * protocol violation returns -1 and sets p->error_code (1002, 1007, 1009,
 * or 1011 when out of memory)
 * and p->error; the parser then stays in error.  out->data stays valid until
 * the next call.
 */
ssize_t ws_parser_feed(ws_parser_t *p, const uint8_t *in, size_t len,
                       ws_message_t *out);

/* Bytes of a frame header for a payload of len bytes (masked or not). */
size_t ws_frame_header_size(uint64_t len, bool masked);

/*
 * Writes a frame header to out (at least WS_MAX_HEADER bytes).  rsv is
 * or-ed into the first byte (WS_RSV1 or 0).  mask may be NULL (server
 * frames) or 4 bytes.  Returns the header length.
 */
size_t ws_frame_write_header(uint8_t *out, ws_opcode_t op, bool fin,
                             uint8_t rsv, uint64_t len, const uint8_t *mask);

/*
 * Writes a whole frame (header and payload, masked when mask != NULL) to
 * out[0..cap).  Returns the frame length, or 0 when cap is too small.
 */
size_t ws_frame_write(uint8_t *out, size_t cap, ws_opcode_t op, bool fin,
                      uint8_t rsv, const uint8_t *payload, size_t len,
                      const uint8_t *mask);

/*
 * XORs data[0..len) in place with the 4-byte mask, starting at mask byte
 * (offset % 4), so a payload can be unmasked in pieces.  Word at a time.
 */
void ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset);

/* True when code may appear in a close frame on the wire (section 7.4). */
bool ws_close_code_valid(unsigned code);

/*
 * Writes a close payload (2-byte code, then reason truncated to fit 123
 * bytes on a UTF-8 boundary) to out[WS_MAX_CONTROL]; returns its length.
 */
size_t ws_close_payload(uint8_t *out, uint16_t code, const char *reason);

#endif
