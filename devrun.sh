set -x
exec > >(tee $OUT/log.txt) 2>&1
nproc; lscpu | grep -E 'Model name'
mkdir -p /tmp/oldsrc && tar --exclude=./abold --exclude='./build*' -cf - . | tar -xf - -C /tmp/oldsrc
cp abold/*.h /tmp/oldsrc/backends/cpu/
C="-G Ninja -DCMAKE_BUILD_TYPE=Release -DSWIGLU_CUDA=OFF -DSWIGLU_HIP=OFF -DSWIGLU_ONEDNN=OFF"
(cmake -S . -B /tmp/bn $C > $OUT/cfg-new.txt 2>&1 && cmake --build /tmp/bn -j8 > $OUT/build-new.txt 2>&1; echo new rc $?) &
(cmake -S /tmp/oldsrc -B /tmp/bo $C -DSWIGLU_BUILD_TESTS=OFF > $OUT/cfg-old.txt 2>&1 && cmake --build /tmp/bo -j8 > $OUT/build-old.txt 2>&1; echo old rc $?) &
wait
tail -3 $OUT/build-new.txt $OUT/build-old.txt
(cd /tmp/bn && timeout 300 ctest -j4 -R "glu_oracle_cpu|glu_quant_cpu|glu_linear_cpu" --output-on-failure > $OUT/ctest.txt 2>&1; echo ctest rc $?; tail -8 $OUT/ctest.txt)
for r in 1 2 3 4 5 6 7 8 9 10; do
 for v in new old; do
  d=/tmp/bn; [ $v = old ] && d=/tmp/bo
  LD_LIBRARY_PATH=$d/lib OMP_NUM_THREADS=16 timeout 60 $d/bin/swiglu-bench --backend cpu --op linear --dtype f32 --shapes 16x2048x5632,8x2048x5632 --reps 11 --no-peer > $OUT/b-$v-$r.txt 2>&1
  echo "$v $r $(awk '$1=="glu-linear"{printf "%s:%s ", $3, $6}' $OUT/b-$v-$r.txt)"
 done
done | tee $OUT/table.txt
