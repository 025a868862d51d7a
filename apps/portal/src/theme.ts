// /theme.css: the embedding product's brand colour and light/dark choice as CSS variables, so
// the page needs no inline style (strict CSP) and the product re-themes without a rebuild.
import type { PortalConfig } from './config';

function expand(hex: string): [number, number, number] {
  const h = hex.slice(1);
  const full = h.length === 3 ? [...h].map((c) => c + c).join('') : h;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
}

/** Relative luminance (WCAG 2.x), to pick black or white text on the brand colour. */
function luminance([r, g, b]: [number, number, number]): number {
  const f = (c: number) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}

export function themeCss(config: Pick<PortalConfig, 'brandColor' | 'theme'>): string {
  const rgb = expand(config.brandColor);
  const onBrand = luminance(rgb) > 0.179 ? '#000000' : '#ffffff';
  const scheme = config.theme === 'auto' ? 'light dark' : config.theme;
  return `html:root {\n  --brand: ${config.brandColor};\n  --brand-rgb: ${rgb.join(', ')};\n  --on-brand: ${onBrand};\n  color-scheme: ${scheme};\n}\n`;
}
