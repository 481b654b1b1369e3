import { synthCrops } from './test/downstream/synth-crops.js';
const d = synthCrops(200, 32, 3);
const c: Record<string, number> = {}; d.types.forEach((t,i)=>{ const k = d.labels[i]+':'+t; c[k]=(c[k]??0)+1; }); console.log(c);
// mean brightness per type
const per = 3*32*32; const m: Record<string, number[]> = {};
for (let i=0;i<d.crops.n;i++){ let s=0; for(let k=0;k<per;k++) s+=d.crops.data[i*per+k]; (m[d.types[i]]??=[]).push(s/per); }
for (const [k,v] of Object.entries(m)) console.log(k, (v.reduce((a,b)=>a+b,0)/v.length).toFixed(1));
