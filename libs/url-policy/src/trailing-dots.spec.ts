import { AllowList, urlRefusal } from './index';

const none = new AllowList([]);

describe('urlRefusal', () => {
  it.each([
    ['https://localhost./x', /internal name/],
    ['https://localhost../x', /internal name/],
    ['https://api.localhost./x', /internal name/],
    ['https://printer.local./x', /internal name/],
    ['https://metadata.google.internal./x', /internal name/],
    ['https://localhost.localdomain/x', /internal name/],
    ['https://box.localdomain./x', /internal name/],
    ['https://intranet./x', /fully qualified/],
    ['https://127.0.0.1./x', /not a public address/],
    ['http://example.com/x', /https/],
  ])('refuses %s', (url, why) => {
    expect(urlRefusal(url, none)).toMatch(why);
  });

  it('names the host as written', () => {
    expect(urlRefusal('https://printer.local./x', none)).toBe('host printer.local. is an internal name');
  });

  it.each(['https://example.com./x', 'https://hooks.example.com/x', 'https://8.8.8.8/x'])('accepts %s', (url) => {
    expect(urlRefusal(url, none)).toBeUndefined();
  });

  it('lets the allow-list open a listed name with or without the trailing dot', () => {
    const allow = new AllowList(['localhost']);
    expect(urlRefusal('https://localhost/x', allow)).toBeUndefined();
    expect(urlRefusal('https://localhost./x', allow)).toBeUndefined();
    expect(urlRefusal('https://printer.local./x', allow)).toMatch(/internal name/);
  });
});
