/*
 * screening: what the caller's network hears when screening rejects a call.
 *
 * Asterisk 22 cannot put a header into a final non-2xx response from the dialplan:
 * PJSIP_HEADER(add) reaches outgoing requests only, and res_pjsip_rfc3326 adds
 * "Reason: Q.850;cause=0" to every PJSIPHangup response (no cause is set yet). This
 * session supplement runs after every other one on the final response to an INVITE and,
 * when the channel's SCREENING_SIP_CODE names the response's status code, sets:
 *
 *   SCREENING_SIP_REASON     the Reason header (every Reason already there is removed)
 *   SCREENING_SIP_CALL_INFO  a Call-Info header (RFC 8688's jwscard on a 608)
 *   SCREENING_SIP_PHRASE     the status line's reason phrase (603 "Network Blocked")
 *
 * The dialplan ([screening-reject] in asterisk-conf/extensions.conf) sets them from what
 * screening decided, never from caller data; still, a value with anything but printable
 * ASCII, or longer than its bound, is refused (logged, the header left as Asterisk made
 * it), so no value can add a header or break the message.
 *
 * Copyright (C) 2026, the screening authors.
 *
 * This program is free software, distributed under the terms of the GNU General Public
 * License Version 2, as Asterisk is.
 */

/*** MODULEINFO
	<depend>pjproject</depend>
	<depend>res_pjsip</depend>
	<depend>res_pjsip_session</depend>
	<support_level>extended</support_level>
 ***/

#include "asterisk.h"

#include <pjsip.h>
#include <pjsip_ua.h>

#include "asterisk/channel.h"
#include "asterisk/module.h"
#include "asterisk/pbx.h"
#include "asterisk/res_pjsip.h"
#include "asterisk/res_pjsip_session.h"
#include "asterisk/threadpool.h"

/* screening's doctor reads this from "module show": bump it when the variables change. */
#define SCREENING_MODULE_VERSION "1"

#define MAX_REASON 256
#define MAX_CALL_INFO 1024
#define MAX_PHRASE 64
#define MAX_CODE 3

/*! Copy a channel variable into buf; 0 if unset or empty. -1 if it breaks a rule: too long
 *  for buf (max bytes), or a byte outside printable ASCII (CR, LF, NUL-cut, DEL, UTF-8). */
static int read_value(struct ast_channel *chan, const char *name, char *buf, size_t max)
{
	const char *value;
	size_t len;
	size_t i;

	buf[0] = '\0';
	value = pbx_builtin_getvar_helper(chan, name);
	if (ast_strlen_zero(value)) {
		return 0;
	}
	len = strnlen(value, max + 1);
	if (len > max) {
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (value[i] < 0x20 || value[i] > 0x7e) {
			return -1;
		}
	}
	memcpy(buf, value, len);
	buf[len] = '\0';
	return 1;
}

struct wanted {
	char code[MAX_CODE + 1];
	char reason[MAX_REASON + 1];
	char call_info[MAX_CALL_INFO + 1];
	char phrase[MAX_PHRASE + 1];
	int bad; /* a value was refused: which ones are logged, never their contents */
};

static void read_wanted(struct ast_channel *chan, struct wanted *want)
{
	ast_channel_lock(chan);
	if (read_value(chan, "SCREENING_SIP_CODE", want->code, MAX_CODE) < 0) {
		want->bad |= 1;
	}
	if (read_value(chan, "SCREENING_SIP_REASON", want->reason, MAX_REASON) < 0) {
		want->bad |= 2;
	}
	if (read_value(chan, "SCREENING_SIP_CALL_INFO", want->call_info, MAX_CALL_INFO) < 0) {
		want->bad |= 4;
	}
	if (read_value(chan, "SCREENING_SIP_PHRASE", want->phrase, MAX_PHRASE) < 0) {
		want->bad |= 8;
	}
	ast_channel_unlock(chan);
}

static void remove_headers(pjsip_tx_data *tdata, const char *name)
{
	pj_str_t hname = pj_str((char *) name);
	pjsip_hdr *hdr;

	while ((hdr = pjsip_msg_find_hdr_by_name(tdata->msg, &hname, NULL))) {
		pj_list_erase(hdr);
	}
}

/*! Replace every header `name` with one of `value`. pjproject reuses the last provisional
 *  response's message for the final one, so whatever an earlier pass added is gone too. */
static void replace_header(pjsip_tx_data *tdata, const char *name, const char *value)
{
	remove_headers(tdata, name);
	ast_sip_add_header(tdata, name, value);
}

static int phrase_ok(const char *phrase)
{
	/* The reason phrase is text up to the line's end: letters, digits, spaces and a few
	 * marks only, so it cannot be read as anything else. */
	for (; *phrase; phrase++) {
		if (!isalnum((unsigned char) *phrase) && !strchr(" -'.,()+", *phrase)) {
			return 0;
		}
	}
	return 1;
}

static void apply(struct ast_sip_session *session, pjsip_tx_data *tdata, struct wanted *want)
{
	const char *channel = ast_channel_name(session->channel);

	if (want->bad) {
		ast_log(LOG_WARNING, "%s: refused screening's value of%s%s%s%s (too long, or a byte "
			"outside printable ASCII); that part of the %d response is left as it was\n",
			channel, want->bad & 1 ? " SCREENING_SIP_CODE" : "",
			want->bad & 2 ? " SCREENING_SIP_REASON" : "",
			want->bad & 4 ? " SCREENING_SIP_CALL_INFO" : "",
			want->bad & 8 ? " SCREENING_SIP_PHRASE" : "", tdata->msg->line.status.code);
	}
	if (!ast_strlen_zero(want->reason)) {
		replace_header(tdata, "Reason", want->reason);
	}
	if (!ast_strlen_zero(want->call_info)) {
		replace_header(tdata, "Call-Info", want->call_info);
	}
	if (!ast_strlen_zero(want->phrase)) {
		if (phrase_ok(want->phrase)) {
			pj_strdup2(tdata->pool, &tdata->msg->line.status.reason, want->phrase);
		} else {
			ast_log(LOG_WARNING, "%s: refused screening's SCREENING_SIP_PHRASE (letters, "
				"digits, spaces and -'.,()+ only)\n", channel);
		}
	}
	/* The message may have been printed already (the provisional it reuses). */
	pjsip_tx_data_invalidate_msg(tdata);
}

static void screening_outgoing_response(struct ast_sip_session *session, pjsip_tx_data *tdata)
{
	struct wanted want = { .bad = 0 };
	int code = tdata->msg->line.status.code;
	char status[8];

	/* As res_pjsip_rfc3326 does: the channel can go while we look, unless we run on the
	 * call's own serializer. */
	if (code < 400 || !session->channel
		|| session->serializer != ast_threadpool_serializer_get_current()) {
		return;
	}
	read_wanted(session->channel, &want);
	snprintf(status, sizeof(status), "%d", code);
	if (ast_strlen_zero(want.code) || strcmp(want.code, status)) {
		/* Not a response screening chose (or not this one): leave it alone. */
		if (want.bad & 1) {
			ast_log(LOG_WARNING, "%s: refused screening's SCREENING_SIP_CODE; the %d "
				"response is left as it was\n", ast_channel_name(session->channel), code);
		}
		return;
	}
	apply(session, tdata, &want);
}

static struct ast_sip_session_supplement screening_supplement = {
	.method = "INVITE",
	/* Last: after res_pjsip_rfc3326 has added its Reason, which ours replaces. */
	.priority = AST_SIP_SUPPLEMENT_PRIORITY_LAST,
	.outgoing_response = screening_outgoing_response,
};

static int load_module(void)
{
	ast_sip_session_register_supplement(&screening_supplement);
	return AST_MODULE_LOAD_SUCCESS;
}

static int unload_module(void)
{
	ast_sip_session_unregister_supplement(&screening_supplement);
	return 0;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
	"screening: headers on rejected calls, version " SCREENING_MODULE_VERSION,
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.load_pri = AST_MODPRI_APP_DEPEND,
	.requires = "res_pjsip,res_pjsip_session",
);
