/*
 * wire.h - the gateway <-> broker wire format, no I/O.
 *
 * Every message is one ZeroMQ multipart message:
 *
 *   frame 0        a fixed 56-byte header (wire_header layout below, all
 *                  integers little-endian)
 *   frames 1..k    the string fields of the message type, in the fixed order
 *                  that wire_fields() gives (an absent string is an empty
 *                  frame)
 *   frames k+1..   items (JOINED/HISTORY: messages of 3 frames each, a
 *                  16-byte item header {seq u64, ts u64} then nick, text;
 *                  WHO_REPLY: one frame per nick)
 *
 * Header layout (offset: field):
 *   0 version u8 (WIRE_VERSION)   1 type u8        2 flags u16
 *   4 members u32                 8 limit u32      12 reserved u32 (0)
 *  16 conn u64    24 seq u64      32 since u64     40 gseq u64    48 ts u64
 *
 * Socket roles: each gateway worker has a DEALER (identity: its node id)
 * connected to the broker's ROUTER for requests and replies, and a SUB
 * (subscribed to everything) connected to the broker's PUB for MSG,
 * PRESENCE and HEARTBEAT.  docs/wire.md describes every message.
 */
#ifndef PARLEY_WIRE_H
#define PARLEY_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HDR_LEN 56
#define WIRE_ITEM_HDR_LEN 16
#define WIRE_MAX_FIELDS 4 /* string fields of any one type */
#define WIRE_MAX_ROOM 64
#define WIRE_MAX_NICK 32
#define WIRE_MAX_REF 64
#define WIRE_MAX_EPOCH 32
#define WIRE_MAX_NODE 64
#define WIRE_MAX_TEXT                                                          \
    (1u << 20) /* sanity bound; the gateway's limit is lower */

typedef enum {
    /* gateway -> broker (DEALER -> ROUTER) */
    WIRE_HELLO = 1, /* node: announce; answered by WELCOME */
    WIRE_PING = 2,  /* heartbeat; answered by PONG */
    WIRE_JOIN = 3,  /* conn room nick epoch since? limit: answered by JOINED */
    WIRE_SAY = 4,   /* conn room nick text ref: answered by ACK or ERROR */
    WIRE_LEAVE = 5, /* conn room: no answer (PRESENCE leave published) */
    WIRE_WHO = 6,   /* conn room ref: answered by WHO_REPLY */
    WIRE_HIST = 7,  /* conn(request id) room since limit: HISTORY */
    WIRE_BYE = 8,   /* node leaves: all its members leave at once */
    /* broker -> one gateway (ROUTER -> DEALER) */
    WIRE_WELCOME = 20, /* boot gseq */
    WIRE_PONG = 21,    /* boot gseq */
    WIRE_JOINED = 22,  /* conn room epoch seq members flags(RECOVERED) items */
    WIRE_ACK = 23,     /* conn room ref seq */
    WIRE_WHO_REPLY = 24, /* conn room ref items(nick) */
    WIRE_HISTORY = 25,   /* conn room epoch seq flags(RECOVERED) items */
    WIRE_ERROR = 26,     /* conn ref code(nick field) message(text field) */
    /* broker -> all gateways (PUB -> SUB) */
    WIRE_MSG = 40,      /* room epoch nick text seq ts gseq */
    WIRE_PRESENCE = 41, /* room nick node conn members flags(LEAVE) gseq */
    WIRE_HEARTBEAT = 42 /* boot gseq */
} wire_type_t;

enum {
    WIRE_F_HAS_SINCE = 1 << 0, /* JOIN: since is set */
    WIRE_F_RECOVERED = 1 << 1, /* JOINED/HISTORY: everything after since */
    WIRE_F_SILENT = 1 << 2,    /* JOIN/LEAVE: no presence event (re-sync) */
    WIRE_F_NOACK = 1 << 3,     /* SAY: no ACK wanted (plain mode) */
    WIRE_F_LEAVE = 1 << 4      /* PRESENCE: a leave (else a join) */
};

/* A borrowed byte string (a ZeroMQ frame, or part of one). */
typedef struct {
    const uint8_t *p;
    size_t len;
} wire_buf_t;

typedef struct {
    uint8_t type;
    uint16_t flags;
    uint32_t members;
    uint32_t limit;
    uint64_t conn; /* gateway-local connection id (or request id) */
    uint64_t seq;  /* room sequence number */
    uint64_t since;
    uint64_t gseq; /* broker-wide publish counter (PUB messages, PONG) */
    uint64_t ts;   /* ms since the Unix epoch */
    /* string fields; which ones a type carries: wire_fields() */
    wire_buf_t room, nick, text, ref, epoch, node, boot;
    /* items after the string frames: borrowed, not yet decoded */
    const wire_buf_t *items;
    size_t num_items; /* items, not frames */
} wire_msg_t;

/* One message of a JOINED/HISTORY reply. */
typedef struct {
    uint64_t seq;
    uint64_t ts;
    wire_buf_t nick;
    wire_buf_t text;
} wire_item_t;

/*
 * The string fields that type carries, in frame order, as offsets of
 * wire_buf_t members of wire_msg_t; returns their count (0..
 * WIRE_MAX_FIELDS), or -1 for an unknown type.
 */
int wire_fields(uint8_t type, size_t offsets[WIRE_MAX_FIELDS]);

/* Frames per item for type: 3 (JOINED, HISTORY), 1 (WHO_REPLY), else 0. */
size_t wire_item_frames(uint8_t type);

/*
 * Decodes frames[0..n) into m (strings and items borrow from frames).
 * Validates version, type, header length, frame count, string lengths
 * (room 1..WIRE_MAX_ROOM where the type needs one, nick, ref, epoch, node
 * bounds) and item shapes.  Returns 0, or -1 with *err set to a static
 * reason.
 */
int wire_decode(const wire_buf_t *frames, size_t n, wire_msg_t *m,
                const char **err);

/* Decodes item i (< m->num_items) of a JOINED/HISTORY message. */
void wire_item(const wire_msg_t *m, size_t i, wire_item_t *out);

/*
 * Encodes m's header into hdr and lists the frames to send, header first
 * then m's string fields in order, into frames[0..cap).  Items are not
 * included: the caller sends them after these frames (wire_item_header()
 * encodes an item's first frame).  Returns the number of frames, or -1
 * when the type is unknown or cap too small.
 */
int wire_encode(const wire_msg_t *m, uint8_t hdr[WIRE_HDR_LEN],
                wire_buf_t *frames, size_t cap);

/* Encodes the 16-byte first frame of a message item. */
void wire_item_header(uint64_t seq, uint64_t ts,
                      uint8_t out[WIRE_ITEM_HDR_LEN]);

/* Name of a type for logs ("MSG"), "?" when unknown. */
const char *wire_type_name(uint8_t type);

#endif
