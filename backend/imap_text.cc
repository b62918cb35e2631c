#include "backend/imap_text.h"

#include <gmime/gmime.h>
#include <strings.h>

#include <memory>
#include <mutex>

#include "backend/imap_date.h"
#include "backend/imap_section.h"

namespace basalt::store::imap {

namespace {

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

struct GFree {
  void operator()(void* p) const { g_free(p); }
};
using GString = std::unique_ptr<char, GFree>;

struct GUnref {
  void operator()(void* p) const { g_object_unref(p); }
};
template <class T>
using GObj = std::unique_ptr<T, GUnref>;

// Unfolding (RFC 5322 §2.2.3) removes the line breaks only; the white space after stays.
std::string unfold(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  return out;
}

// The decoded, UTF-8 content of one text part.
void append_text_part(GMimePart* part, std::string& out) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (!content) return;
  GObj<GMimeStream> mem(g_mime_stream_mem_new());
  GObj<GMimeStream> filtered(g_mime_stream_filter_new(mem.get()));
  const char* charset = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
  if (charset && strcasecmp(charset, "utf-8") != 0 && strcasecmp(charset, "us-ascii") != 0) {
    if (GMimeFilter* filter = g_mime_filter_charset_new(charset, "UTF-8")) {
      g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered.get()), filter);
      g_object_unref(filter);
    }
  }
  g_mime_data_wrapper_write_to_stream(content, filtered.get());  // removes the transfer encoding
  g_mime_stream_flush(filtered.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  if (!out.empty()) out.push_back('\n');
  out.append(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

struct BodyWalk {
  std::string* out;
  unsigned depth;
};

void visit_part(GMimeObject* /*parent*/, GMimeObject* part, gpointer data) {
  auto* walk = static_cast<BodyWalk*>(data);
  if (GMIME_IS_MESSAGE_PART(part)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(part));
    if (inner && walk->depth < 16) {  // bounded: hostile mail nests message/rfc822 deeply
      BodyWalk nested{walk->out, walk->depth + 1};
      g_mime_message_foreach(inner, visit_part, &nested);
    }
    return;
  }
  if (!GMIME_IS_PART(part)) return;
  GMimeContentType* type = g_mime_object_get_content_type(part);
  if (type && g_mime_content_type_is_type(type, "text", "*")) append_text_part(GMIME_PART(part), *walk->out);
}

}  // namespace

std::string decode_header_value(std::string_view value) {
  init_gmime();
  std::string unfolded = unfold(value);
  GString decoded(g_mime_utils_header_decode_text(nullptr, unfolded.c_str()));
  return decoded ? std::string(decoded.get()) : unfolded;
}

std::string decoded_body_text(std::string_view raw) {
  init_gmime();
  GObj<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(raw.data(), raw.size()));
  GObj<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GObj<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  std::string out;
  if (!message) return out;
  BodyWalk walk{&out, 0};
  g_mime_message_foreach(message.get(), visit_part, &walk);
  return out;
}

std::string fold_case(std::string_view text) {
  if (g_utf8_validate(text.data(), static_cast<gssize>(text.size()), nullptr)) {
    GString folded(g_utf8_casefold(text.data(), static_cast<gssize>(text.size())));
    return std::string(folded.get());
  }
  std::string out(text);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::vector<std::string> header_values(std::string_view header, std::string_view name) {
  std::vector<std::string> values;
  for_each_header_field(header, [&](std::string_view field_name, std::string_view field) {
    if (field_name.size() != name.size() || strncasecmp(field_name.data(), name.data(), name.size()) != 0) return;
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) return;  // a line that only looks like the name
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    values.push_back(unfold(value));
  });
  return values;
}

std::optional<int64_t> sent_day(std::string_view date_value) {
  init_gmime();
  std::string text(date_value);
  GDateTime* when = g_mime_utils_header_decode_date(text.c_str());
  if (!when) return std::nullopt;
  int64_t day = days_from_civil(g_date_time_get_year(when), static_cast<unsigned>(g_date_time_get_month(when)),
                                static_cast<unsigned>(g_date_time_get_day_of_month(when)));
  g_date_time_unref(when);
  return day;
}

}  // namespace basalt::store::imap
