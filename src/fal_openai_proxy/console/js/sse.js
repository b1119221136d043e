// Server-sent events from a fetch() answer, as the openai SDKs read a stream: one JSON object
// per `data:` event, until `data: [DONE]`.

export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r\n|\n|\r/)) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(buffer[end] === "\r" && buffer[end + 1] === "\n" ? end + 2 : end + 1);
        if (line === "") {
          if (data.length) {
            const text = data.join("\n");
            data = [];
            if (text === "[DONE]") return;
            yield JSON.parse(text);
          }
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line[5] === " " ? 6 : 5));
        } // comments (": keep-alive") and other fields are not ours
      }
    }
  } finally {
    reader.releaseLock();
  }
}
