// Entry point: styles, session resume, render, and a small debugging handle for tests and support.
import { render } from 'preact';
import { App } from './App';
import { boot, _debug } from './session';
import './styles.css';

(window as unknown as { __callto: typeof _debug }).__callto = _debug;
render(<App />, document.getElementById('app')!);
void boot();
