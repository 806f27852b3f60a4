-- Lets Debian 12's prosody-modules snapshot (hg 2023-02-23: mod_sasl2, mod_sasl2_bind2,
-- mod_sasl2_fast, mod_sasl2_sm) run on Debian 12's Prosody 0.12.3. That snapshot
-- was written against Prosody's development branch, which has two things 0.12 lacks:
--
-- 1. Connection methods conn:ssl_info() and conn:ssl_peerfinished(). mod_sasl2
--    calls them while building the stream features after TLS; without them it throws
--    and the client gets no features at all. Added here around the LuaSec socket, the
--    way 0.12's own mod_saslauth uses it. (LuaSec 1.2 has no keying-material
--    exporter, so ssl_exportkeyingmaterial stays undefined and mod_sasl2 offers no
--    tls-exporter binding, as it checks for it.)
-- 2. The stream header's attributes in the stream-features event (event.stream).
--    mod_sasl2_fast reads event.stream.from to decide whether to offer FAST; 0.12
--    passes no event.stream, so it throws. The client's `from` is captured when the
--    server answers each stream header (xmppstream's session.stream_attrs hook, set
--    on every c2s session before its first header is parsed) and handed on here.
-- 3. util.datetime that takes fractional seconds: mod_sasl2_fast formats a token's
--    expiry from util.time.now() (a float), which 0.12's os.date refuses on Lua 5.4.
--    Wrapped here to round down to whole seconds.
-- 4. Stanza methods get_child_attr() (mod_sasl2_fast reads the user-agent id with it)
--    and add_error() (mod_sasl2_bind2, when a bind fails), as the development
--    branch's util.stanza has them.
--
-- mod_sasl2_sm (SM inside SASL2/Bind2) needs mod_smacks functions (do_enable,
-- do_resume) that 0.12 does not export; that is more than a shim, so it is not loaded.
--
-- Loaded before mod_sasl2 in modules_enabled; hooks stream-features at a higher
-- priority than mod_sasl2 so that both are in place before it runs. Not needed, and
-- not loaded, on Prosody 13 (bench/peers/prosody.sh loads it only before 13).

local portmanager = require "core.portmanager";
local datetime = require "util.datetime";
local stanza_mt = require "util.stanza".stanza_mt;

local c2s_sessions = module:shared("/*/c2s/sessions");

local function capture_stream_from(session, _, to)
	-- open_stream(session, from = our domain, to = the client's `from`)
	session.bench_stream_from = to;
end

-- Wraps mod_c2s's listener (shared by c2s and c2s_direct_tls) so that every session
-- gets stream_attrs before its first stream header is parsed.
local function patch_c2s_listener()
	local service = portmanager.get_service("c2s");
	local listener = service and service.listener;
	if not listener or listener.bench_compat then return end
	local onincoming = listener.onincoming;
	function listener.onincoming(conn, data)
		local session = c2s_sessions[conn];
		if session and not session.stream_attrs then
			session.stream_attrs = capture_stream_from;
		end
		return onincoming(conn, data);
	end
	listener.bench_compat = true;
end

local function add_connection_methods(conn)
	local index = getmetatable(conn).__index;
	if type(index) ~= "table" or index.ssl_info then return end
	function index:ssl_info()
		local sock = self:socket();
		return sock and sock.info and sock:info() or nil;
	end
	function index:ssl_peerfinished()
		local sock = self:socket();
		return sock and sock.getpeerfinished and sock:getpeerfinished() or nil;
	end
end

if not datetime.bench_compat then
	for _, name in ipairs({ "date", "datetime", "time" }) do
		local format = datetime[name];
		datetime[name] = function (t) return format(t and math.floor(t)); end
	end
	datetime.bench_compat = true;
end

if not stanza_mt.get_child_attr then
	function stanza_mt:get_child_attr(name, xmlns, attr)
		local tag = self:get_child(name, xmlns);
		return tag and tag.attr[attr] or nil;
	end
end

if not stanza_mt.add_error then
	-- err: a util.error object or a condition name.
	function stanza_mt:add_error(err)
		local is_table = type(err) == "table";
		local condition = is_table and err.condition or tostring(err or "undefined-condition");
		self:tag("error", { xmlns = "jabber:client"; type = is_table and err.type or "cancel" })
			:tag(condition, { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }):up();
		if is_table and err.text then
			self:text_tag("text", err.text, { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" });
		end
		return self:up();
	end
end

patch_c2s_listener();
module:hook_global("server-started", patch_c2s_listener);

module:hook("stream-features", function (event)
	local session = event.origin;
	if session.conn then add_connection_methods(session.conn); end
	if event.stream == nil then
		event.stream = { from = session.bench_stream_from };
	end
end, 1000);
