// XMLHttpRequest over Node's fetch: the part dicomweb-client's _httpRequest uses (open,
// setRequestHeader, responseType '' | 'json' | 'arraybuffer' | 'text', send,
// onreadystatechange at readyState 4, status, response, getResponseHeader). Node has no
// XMLHttpRequest; a browser's would send the same method, URL and headers.
// Every request is recorded in globalThis.xhrLog (method, url, accept, status,
// contentType) so a harness can report what the viewer asked the server for.
'use strict';

globalThis.xhrLog = [];

// As a browser does: a body that is not JSON gives a null response, not an exception.
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

class XMLHttpRequest {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.response = null;
    this.responseType = '';
    this.headers = {};
    this.responseHeaders = new Headers();
    this.onreadystatechange = null;
  }

  open(method, url) {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }

  setRequestHeader(key, value) {
    this.headers[key] = value;
  }

  getResponseHeader(key) {
    return this.responseHeaders.get(key);
  }

  async send(body) {
    const entry = { method: this.method, url: this.url, accept: this.headers.Accept ?? null };
    globalThis.xhrLog.push(entry);
    try {
      const res = await fetch(this.url, { method: this.method, headers: this.headers, body });
      const bytes = await res.arrayBuffer();
      this.status = res.status;
      this.responseHeaders = res.headers;
      entry.status = res.status;
      entry.contentType = res.headers.get('Content-Type');
      const text = () => new TextDecoder().decode(bytes);
      if (this.responseType === 'arraybuffer') this.response = bytes;
      else if (this.responseType === 'json') this.response = parseJson(text());
      else this.response = text();
    } catch (err) {
      entry.error = `${err?.name}: ${err?.message}`;
      this.status = 0;
    }
    this.readyState = 4;
    this.onreadystatechange?.();
    this.onloadend?.();
  }
}

globalThis.XMLHttpRequest = XMLHttpRequest;
